using ProtoPNet.Inference.Bundles;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Tiff;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.Memory;
using SixLabors.ImageSharp.Metadata;
using SixLabors.ImageSharp.Metadata.Profiles.Exif;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// An uploaded image, upright (EXIF orientation applied) and opaque (transparency composited over white). A JPEG
/// decoded at a reduced DCT scale has fewer <see cref="Pixels"/> than the upload; <see cref="Width"/> and
/// <see cref="Height"/> are always the upload's, the size answers give boxes in.
/// </summary>
public sealed class DecodedImage(Image<Rgb24> pixels, string format, int width, int height) : IDisposable
{
    private Image<Rgb24>? _pixels = pixels;

    public DecodedImage(Image<Rgb24> pixels, string format) : this(pixels, format, pixels.Width, pixels.Height)
    {
    }

    /// <summary>The decoded pixels, until <see cref="ReleasePixels"/>.</summary>
    public Image<Rgb24> Pixels => _pixels ?? throw new InvalidOperationException("The pixels were released once the network's input was written.");
    public bool HasPixels => _pixels is not null;
    /// <summary>The detected file format, e.g. "PNG".</summary>
    public string Format { get; } = format;
    /// <summary>The upload's width, upright.</summary>
    public int Width { get; } = width;
    /// <summary>The upload's height, upright.</summary>
    public int Height { get; } = height;
    /// <summary>The decoded pixels' size (smaller than the upload's for a JPEG decoded at a reduced DCT scale).</summary>
    public (int Width, int Height) Decoded { get; } = (pixels.Width, pixels.Height);

    /// <summary>Frees the pixels when nothing will draw on them (the sizes stay).</summary>
    public void ReleasePixels() => Interlocked.Exchange(ref _pixels, null)?.Dispose();

    /// <summary>
    /// Keeps the pixels only to draw on (heatmaps, the card), once the network's input is written: an image of more
    /// than <paramref name="maxPixels"/> is replaced by a copy scaled down to <see cref="DrawingSize"/>. A heatmap of a
    /// 7x7 activation map shows nothing more at 40 megapixels than at 4, and the full image would cost ten times the memory.
    /// </summary>
    public void ShrinkForDrawing(long maxPixels)
    {
        var pixels = Pixels;
        var (width, height) = DrawingSize(pixels.Width, pixels.Height, maxPixels);
        if (width == pixels.Width && height == pixels.Height) return;
        _pixels = pixels.Clone(context => context.Resize(width, height, KnownResamplers.Bicubic));
        pixels.Dispose();
    }

    /// <summary>The size an image of <paramref name="width"/> x <paramref name="height"/> is drawn at: its own, or scaled down
    /// (the same aspect, rounded down) to at most <paramref name="maxPixels"/>.</summary>
    public static (int Width, int Height) DrawingSize(int width, int height, long maxPixels)
    {
        if ((long)width * height <= maxPixels) return (width, height);
        var scale = Math.Sqrt((double)maxPixels / ((double)width * height));
        // A side that would shrink below one pixel stays one, and the other takes the whole bound.
        if (height * scale < 1) return ((int)Math.Min(width, maxPixels), 1);
        if (width * scale < 1) return (1, (int)Math.Min(height, maxPixels));
        var drawn = (Width: (int)(width * scale), Height: (int)(height * scale));
        // floor(w s) x floor(h s) <= w h s^2 = maxPixels, up to the square root's last bit: a step or two back at most.
        while ((long)drawn.Width * drawn.Height > maxPixels) drawn = drawn.Width >= drawn.Height ? drawn with { Width = drawn.Width - 1 } : drawn with { Height = drawn.Height - 1 };
        return drawn;
    }

    public void Dispose() => ReleasePixels();
}

/// <summary>
/// Decodes PNG, JPEG, GIF (first frame), BMP, WebP (an animation's first frame) and TIFF (first frame). Size limits are checked on the header
/// before any pixel memory is allocated, so a small file that declares a huge image is refused cheaply.
/// An exception of the decoder's own code on a file no check foresaw (the rewrites run on hostile bytes before any
/// check) is refused as not decodable, and reported to <paramref name="onFault"/>: a 400 to the client, the fault to
/// the service's log, never a 500.
/// </summary>
public sealed class ImageDecoder(ImageLimits limits, Action<Exception>? onFault = null)
{
    /// <summary>Content types accepted for a raw request body.</summary>
    public static readonly IReadOnlyList<string> AcceptedContentTypes =
        ["image/png", "image/jpeg", "image/gif", "image/bmp", "image/webp", "image/tiff"];

    private static readonly Configuration Configuration = CreateConfiguration();

    /// <summary>The most scans a JPEG may have: libjpeg's progressive modes write 6 to 10, encoders that tune them a few dozen.</summary>
    public const int MaxJpegScans = 64;

    public ImageLimits Limits => limits;

    public static bool IsAcceptedContentType(string? contentType)
    {
        if (string.IsNullOrWhiteSpace(contentType)) return false;
        var mediaType = contentType.Split(';', 2)[0].Trim().ToLowerInvariant();
        return AcceptedContentTypes.Contains(mediaType) || mediaType is "image/jpg" or "image/x-ms-bmp" or "image/x-bmp" or "image/tif";
    }

    /// <summary>Decodes an upload for a model: a JPEG at a reduced DCT scale when the model was trained so (<c>input.jpegDraft</c>).</summary>
    public DecodedImage DecodeFor(ReadOnlyMemory<byte> bytes, InputSection input) =>
        Decode(bytes, input.JpegDraft ? (input.Width, input.Height) : null);

    /// <summary>
    /// s of the libjpeg DCT scale 1/s (8, 4, 2 or 1) a JPEG is decoded at for a model whose input is
    /// <paramref name="inputWidth"/> x <paramref name="inputHeight"/>: the smallest scale at which the upright image is
    /// still at least the input size on both sides, so the resize that follows only shrinks. The width and height are
    /// the file's as stored, before its EXIF orientation (which may swap them). It is Pillow's <c>draft</c> rule, and
    /// the trainer's (<c>jpeg_draft_scale</c> in image_files.py). A 12-megapixel photo decodes about 6 times faster at 1/8.
    /// </summary>
    public static int JpegDraftScale(int storedWidth, int storedHeight, int inputWidth, int inputHeight, bool transposed)
    {
        if (transposed) (inputWidth, inputHeight) = (inputHeight, inputWidth);
        var fits = Math.Min(storedWidth / inputWidth, storedHeight / inputHeight);
        return fits >= 8 ? 8 : fits >= 4 ? 4 : fits >= 2 ? 2 : 1;
    }

    /// <summary>
    /// Decodes an upload; with <paramref name="jpegDraftSize"/> (a model's input width and height) a JPEG decodes at
    /// <see cref="JpegDraftScale"/>, with libjpeg-turbo (without it, or for a JPEG it cannot decode, in full with ImageSharp).
    /// </summary>
    public DecodedImage Decode(ReadOnlyMemory<byte> bytes, (int Width, int Height)? jpegDraftSize = null)
    {
        try
        {
            return DecodeUpload(bytes, jpegDraftSize);
        }
        catch (Exception fault) when (IsFault(fault))
        {
            onFault?.Invoke(fault);
            throw new ImageRejectedException(ImageRejection.NotDecodable,
                $"The image cannot be decoded here: the decoder failed on it ({fault.GetType().Name}), a fault of the service's, " +
                "which it has logged. Send the picture as PNG or JPEG.", fault);
        }
    }

    /// <summary>
    /// Whether an exception from decoding is a fault of the decoder's own, not a refusal (<see cref="ImageRejectedException"/>),
    /// a lack of memory, or a cancellation, which the caller answers as they are.
    /// </summary>
    private static bool IsFault(Exception exception) =>
        exception is not (ImageRejectedException or OutOfMemoryException or OperationCanceledException);

    private DecodedImage DecodeUpload(ReadOnlyMemory<byte> bytes, (int Width, int Height)? jpegDraftSize)
    {
        if (bytes.Length == 0) throw new ImageRejectedException(ImageRejection.NotDecodable, "The image is empty (0 bytes).");
        if (bytes.Length > limits.MaxBytes)
        {
            throw new ImageRejectedException(ImageRejection.TooManyBytes,
                $"The image has {bytes.Length} bytes; the limit is {limits.MaxBytes} bytes.");
        }
        // The upload as the checks judge it: a TIFF's first page alone, its later pages (which neither Pillow nor the
        // decoder here reads, but ImageSharp and the completeness check walked) cut off.
        var uploaded = TiffLaterImages.WithFirstImageAlone(bytes);
        bytes = uploaded;
        // Rewritten where ImageSharp mishandles a file (otherwise the bytes pass as they are), in this order, before any check:
        bytes = PngText.WithoutCompressedChunks(bytes);        // compressed metadata the decoder would inflate without limit
        bytes = PngImageData.WithShortFirstChunkMerged(bytes); // a first IDAT of 0 or 1 bytes, which it refused
        bytes = PngImageData.WithImageDataChecksumsMended(bytes); // a wrong CRC from the first IDAT on, which it refused and Pillow does not read
        bytes = PngImageData.WithTransparencyBeforeImageData(bytes); // a tRNS after the image data, which it passed over and Pillow reads
        bytes = PngInterlace.WithAdam7ForAnyMethod(bytes);     // an interlace method past 1, which it refused and Pillow reads as Adam7
        bytes = PngGreyPalette.WithGreysBeforeImageData(bytes); // a palette image without a PLTE before its image data, or a short one, which it refused or read otherwise and Pillow shows as greys
        bytes = TiffStrips.WithRowsPerStripClamped(bytes);     // a RowsPerStrip beyond the height, which sized its buffer
        bytes = TiffDefaults.WithDefaults(bytes);              // no BitsPerSample, or no PhotometricInterpretation for one sample, which it refused
        bytes = TiffRawStripLists.WithListsPillowReads(bytes); // an uncompressed TIFF's strip counts missing, short or of odd types, offsets of BYTE, SBYTE or LONG8 (which it refused) or past its strips (read otherwise)
        bytes = TiffFillOrder.WithMostSignificantBitFirst(bytes); // strips stored least significant bit first, which it misread
        bytes = TiffColorMap.WithLevelsReadAlike(bytes);       // a palette's 16-bit levels, which it scaled where Pillow keeps the high byte
        bytes = JpegFillBytes.Without(bytes);                  // fill bytes before the first scan, which it refused
        bytes = BmpOs2Bitfields.WithVersion4Header(bytes);     // OS/2 2.x's 64-byte header with compression 3, which it took for Huffman and Pillow reads as masks
        bytes = BmpBgrBitfields.AsUncompressed(bytes);         // a 24-bit BMP of BITFIELDS in Pillow's one layout for them, which it read to other pixels
        bytes = BmpColourCount.WithoutColourCount(bytes);      // a count of palette colours in a BMP of more than 8 bits, which it refused
        bytes = BmpPaletteLayout.AsPillowReadsIt(bytes);       // a palette that reaches past the pixels' offset, which it refused, or sized otherwise
        bytes = GifBlocks.WithoutStrayBlocks(bytes);           // stray bytes before a GIF's first image, which it refused
        bytes = GifScreen.WithFirstFrameInside(bytes);         // a first frame past the GIF's screen, which it refused
        bytes = WebpRiff.WithoutTrailingBytes(bytes);          // bytes after a WebP's container, which it read and refused
        // An animated WebP: its first frame is decoded as a still, then put on the animation's canvas, whose size is judged.
        var container = bytes;
        var animation = WebpFirstFrame.Find(bytes.Span);
        if (animation is not null)
        {
            RefuseSize(animation.CanvasWidth, animation.CanvasHeight, "WebP", limits);
            RefuseCompression((long)animation.CanvasWidth * animation.CanvasHeight, bytes.Length, "WebP");
            bytes = animation.Still;
        }
        var (width, height, imageFormat, metadata) = Identify(bytes, limits);
        var format = DisplayName(imageFormat);
        // ImageSharp reads a PNG side beyond int's range as a negative number, a TIFF's as int.MaxValue, and a GIF's
        // frame past 16 bits is beyond what its screen can say: then the header's own numbers are judged (and told).
        (long Width, long Height) declared = width is > 0 and < int.MaxValue && height is > 0 and < int.MaxValue && imageFormat is not GifFormat
            ? (width, height) : DeclaredSize.Read(bytes.Span, imageFormat) ?? (width, height);
        RefuseSize(declared.Width, declared.Height, format, limits);
        RefuseCompression(declared.Width * declared.Height, bytes.Length, format);

        // ImageSharp fills a missing end with grey and reports success, so an interrupted upload is found here instead.
        // A TIFF is judged as uploaded: a directory or lists a rewrite wrote after its end would make values past the
        // upload's end (where Pillow stops reading the directory) look whole.
        if (ImageCompleteness.FindMissingData((imageFormat is TiffFormat ? uploaded : bytes).Span, imageFormat, out var jpegScans) is { } missing)
        {
            throw new ImageRejectedException(ImageRejection.Truncated, $"The {format} image is truncated: {missing}.");
        }
        // ImageSharp decodes on through damage Pillow refuses: such a file is refused rather than classified as the garbage the trainer never saw.
        var stripRewrites = imageFormat is TiffFormat ? new TiffStripRewrites() : null;
        if (FindCorruption(bytes, imageFormat, stripRewrites, uploaded.Length) is { } corruption)
        {
            throw new ImageRejectedException(ImageRejection.NotDecodable, $"The {format} image is corrupt: {corruption}.");
        }
        // Judged on the upload: the rewrites above give the decoder here what Pillow reads from it.
        if (imageFormat is TiffFormat && (TiffPillowModes.FindNoMode(uploaded.Span) ?? TiffColorMap.FindRefusedByLibtiff(uploaded.Span)) is { } unreadable)
        {
            throw new ImageRejectedException(ImageRejection.NotDecodable, $"The {format} image is corrupt: {unreadable}.");
        }
        if (imageFormat is TiffFormat && TiffPillowLayout.NotDecodedHere(bytes.Span) is { } form)
        {
            throw new ImageRejectedException(ImageRejection.NotDecodable, $"The {format} image is in a form not decoded here: {form} (send the picture as PNG or JPEG).");
        }
        // Pillow opens every WebP, still or animated, through libwebp's demuxer, which refuses containers the decoders here read past.
        if (imageFormat is WebpFormat && LibWebpDemux.FindCorruption(container) is { } badContainer)
        {
            throw new ImageRejectedException(ImageRejection.NotDecodable, $"The {format} image is corrupt: {badContainer}.");
        }
        if (stripRewrites is not null)
        {
            // Sound LZW strips ImageSharp reads otherwise than libtiff (a string past the rows, clear codes in a row, codes
            // after the rows) and PackBits strips whose rows end inside a run, written anew as libtiff decodes them.
            bytes = TiffStripsWrittenAnew.WithStripsWrittenAnew(bytes, stripRewrites);
            // Uncompressed strips counted short of their rows, which Pillow reads whole from their offsets, a lone
            // compressed strip counted 0, which libtiff reads to the file's end, PackBits strips counted past their rows.
            bytes = TiffStripCounts.WithTheTrainersCounts(bytes, stripRewrites);
        }
        // A PNG's rows, once its chunks and zlib header are sound: inflated here, since ImageSharp waits forever for an interlaced image's missing rows.
        if (imageFormat is PngFormat && PngRows.FindUnreadable(bytes.Span) is var (rejection, reason))
        {
            throw new ImageRejectedException(rejection, $"The {format} image is {(rejection == ImageRejection.Truncated ? "truncated" : "corrupt")}: {reason}.");
        }
        // Each scan of a progressive JPEG is decoded over the whole image: hundreds of tiny scans cost tens of seconds.
        if (jpegScans > MaxJpegScans)
        {
            throw new ImageRejectedException(ImageRejection.NotDecodable,
                $"The JPEG image has {jpegScans} scans; at most {MaxJpegScans} are decoded (a progressive JPEG has about 10).");
        }

        // A JPEG has no alpha: decoded straight to RGB, with no RGBA image to composite and copy (a photo's largest cost
        // after the decoding itself). Other formats may be transparent.
        // A TIFF's orientation is a tag of its directory, which the decoder leaves out of the EXIF profile.
        var orientation = imageFormat is TiffFormat ? TiffDirectory.OrientationOf(bytes.Span) : OrientationOf(metadata);
        if (imageFormat is JpegFormat)
        {
            var transposed = orientation is
                ExifOrientationMode.LeftTop or ExifOrientationMode.RightTop or ExifOrientationMode.RightBottom or ExifOrientationMode.LeftBottom;
            var scale = jpegDraftSize is var (inputWidth, inputHeight) ? JpegDraftScale(width, height, inputWidth, inputHeight, transposed) : 1;
            // libjpeg-turbo when the system has it: Pillow's decoder, so the trainer's pixels (TurboJpeg).
            var opaque = TurboJpeg.TryDecode(bytes.Span, width, height, scale, Configuration) is { } turbo
                ? WithExif(turbo, metadata)
                : Load<Rgb24>(bytes, format);
            try
            {
                AutoOrient(opaque, orientation);
                return new DecodedImage(opaque, format, transposed ? height : width, transposed ? width : height);
            }
            catch
            {
                opaque.Dispose();
                throw;
            }
        }
        // libwebp when the system has it: Pillow's decoder, so the trainer's pixels, and its refusals (LibWebp).
        using var decoded = imageFormat is WebpFormat && LibWebp.TryDecode(bytes.Span, width, height, Configuration) is { } webp
            ? webp
            : imageFormat is TiffFormat && TiffSixteenBitRgb.Applies(bytes.Span)
                ? TiffSixteenBitRgb.HighBytes(Load<Rgba64>(bytes, format), Configuration)   // the samples' high bytes, as Pillow reads them
                : Load<Rgba32>(bytes, format);
        if (imageFormat is BmpFormat) BmpPixelsAsPillow.Apply(decoded, bytes.Span);
        if (imageFormat is TiffFormat) TiffFaxPolarity.Apply(decoded, bytes.Span);
        if (imageFormat is GifFormat && ImageCompleteness.GifPixelsMissing(bytes.Span) is { } missingPixels)
        {
            throw new ImageRejectedException(ImageRejection.Truncated, $"The {format} image is truncated: {missingPixels}.");
        }
        if (imageFormat is GifFormat) GifOutsideTheFirstImage.Apply(decoded, bytes.Span);
        using var picture = animation?.OnCanvas(decoded, Configuration);
        AutoOrient(picture ?? decoded, orientation);
        return new DecodedImage(CompositeOverWhite(picture ?? decoded), format);
    }

    /// <summary>What is damaged in a whole file that the decoder would decode anyway (one sentence), or null.</summary>
    private static string? FindCorruption(ReadOnlyMemory<byte> file, IImageFormat format, TiffStripRewrites? stripRewrites, int uploadedLength) => format switch
    {
        TiffFormat => TiffStripData.FindCorruption(file, LibDeflate.IsAvailable, stripRewrites, uploadedLength),
        PngFormat => PngChecksums.FindCorruption(file.Span),
        BmpFormat => BmpPixelData.FindCorruption(file.Span),
        JpegFormat => JpegSignature.FindCorruption(file.Span),
        GifFormat => GifBlocks.FindCorruption(file.Span),
        _ => null,
    };

    /// <summary>
    /// Width x height as the header says, without decoding a pixel; null when the header cannot be read, or when reading
    /// it faults (a hint only: <see cref="Decode"/> meets the same fault, and reports it).
    /// </summary>
    public static long? PixelCount(ReadOnlyMemory<byte> bytes)
    {
        try
        {
            if (WebpFirstFrame.DeclaredCanvas(bytes.Span) is var (canvasWidth, canvasHeight)) return (long)canvasWidth * canvasHeight;
            var (width, height, _, _) = Identify(WebpRiff.WithoutTrailingBytes(PngText.WithoutCompressedChunks(bytes)), Unlimited);
            return (long)width * height;
        }
        catch (Exception exception) when (exception is not (OutOfMemoryException or OperationCanceledException))   // a refusal or a fault
        {
            return null;
        }
    }

    /// <summary>
    /// The EXIF orientation read with the header; none when the EXIF block cannot be read. ImageSharp parses the block
    /// when it is first asked, and throws for a directory that points at itself or a tag that declares 2^31 values;
    /// Pillow (the trainer's decoder) reads no orientation from such a block and decodes the image as stored, and so
    /// does the service: a photo is not refused for its metadata. The broken profile is dropped, so nothing reads it again.
    /// </summary>
    private static ushort OrientationOf(ImageMetadata metadata)
    {
        try
        {
            return metadata.ExifProfile?.GetValue(ExifTag.Orientation)?.Value ?? ExifOrientationMode.TopLeft;
        }
        catch (Exception exception) when (exception is not OutOfMemoryException)
        {
            metadata.ExifProfile = null;
            return ExifOrientationMode.TopLeft;
        }
    }

    /// <summary>The EXIF profile read with the header, for <see cref="AutoOrient{TPixel}"/> (TurboJPEG decodes pixels only).</summary>
    private static Image<Rgb24> WithExif(Image<Rgb24> image, ImageMetadata metadata)
    {
        image.Metadata.ExifProfile = metadata.ExifProfile;   // Identify's metadata is not used again
        return image;
    }

    private static Image<TPixel> Load<TPixel>(ReadOnlyMemory<byte> bytes, string format) where TPixel : unmanaged, IPixel<TPixel>
    {
        try
        {
            return Image.Load<TPixel>(Configuration, AsStream(bytes));
        }
        catch (NotSupportedException exception)
        {
            // A sound file in a form the decoder does not take (a CMYK, tiled, grey-and-alpha, RGBX, signed-integer or
            // CIELab TIFF): not "corrupt", and what to send instead.
            var advice = exception.Message.Contains("photometric interpretation is not supported: Separated", StringComparison.Ordinal)
                ? " (CMYK colour: send the picture in RGB, e.g. as PNG or JPEG)"
                : exception.Message.Contains("Tiled images are not supported", StringComparison.Ordinal)
                    ? " (a tiled TIFF: send the picture as PNG or JPEG, or as a TIFF in strips)"
                    : " (send the picture as PNG or JPEG)";
            throw new ImageRejectedException(ImageRejection.NotDecodable, $"The {format} image is in a form not decoded here: {exception.Message.TrimEnd('.')}{advice}.", exception);
        }
        catch (Exception exception) when (exception is not OutOfMemoryException)
        {
            throw new ImageRejectedException(ImageRejection.NotDecodable, $"The {format} image is truncated or corrupt: {Reason(exception)}", exception);
        }
    }

    /// <summary>
    /// Turns the image upright as its EXIF <paramref name="orientation"/> (read with the header) says; most images have
    /// none, and skip the processing pipeline, which reads the orientation from the image's own profile.
    /// </summary>
    private static void AutoOrient<TPixel>(Image<TPixel> image, ushort orientation) where TPixel : unmanaged, IPixel<TPixel>
    {
        if (orientation == ExifOrientationMode.TopLeft) return;
        // The processor reads the orientation from the image's own profile, which a TIFF's decoder does not fill.
        image.Metadata.ExifProfile ??= new ExifProfile();
        image.Metadata.ExifProfile.SetValue(ExifTag.Orientation, orientation);
        image.Mutate(context => context.AutoOrient());
    }

    /// <summary>
    /// Drops the alpha channel by compositing over white: c' = (c * a + 255 * (255 - a)) / 255. One pass that also
    /// converts to RGB (several times faster than ImageSharp's BackgroundColor processor followed by a clone).
    /// </summary>
    private static Image<Rgb24> CompositeOverWhite(Image<Rgba32> image)
    {
        var result = new Image<Rgb24>(Configuration, image.Width, image.Height);
        image.ProcessPixelRows(result, (source, target) =>
        {
            for (var y = 0; y < source.Height; y++)
            {
                var from = source.GetRowSpan(y);
                var to = target.GetRowSpan(y);
                for (var x = 0; x < from.Length; x++)
                {
                    var pixel = from[x];
                    if (pixel.A == 255)
                    {
                        to[x] = new Rgb24(pixel.R, pixel.G, pixel.B);
                        continue;
                    }
                    var alpha = pixel.A;
                    var white = 255 * (255 - alpha) + 127;
                    to[x] = new Rgb24((byte)((pixel.R * alpha + white) / 255), (byte)((pixel.G * alpha + white) / 255),
                        (byte)((pixel.B * alpha + white) / 255));
                }
            }
        });
        return result;
    }

    /// <summary>Limits that refuse only an image without pixels: for reading a header's size.</summary>
    private static readonly ImageLimits Unlimited = new() { MaxPixels = long.MaxValue, MaxSide = int.MaxValue };

    /// <summary>
    /// Refuses an image without pixels, with more than <see cref="ImageLimits.MaxPixels"/> or with a side longer than
    /// <see cref="ImageLimits.MaxSide"/>, by the size its header declares.
    /// </summary>
    private static void RefuseSize(long width, long height, string format, ImageLimits limits, Exception? cause = null)
    {
        var maxPixels = limits.MaxPixels;
        if (width <= 0 || height <= 0)
        {
            throw new ImageRejectedException(ImageRejection.ZeroSized, $"The {format} image is {width}x{height} pixels: it has no pixels.", cause);
        }
        if (width > maxPixels / height)   // width * height > maxPixels, without overflowing for two 32-bit sides
        {
            throw new ImageRejectedException(ImageRejection.TooManyPixels,
                $"The {format} image is {width}x{height} = {(decimal)width * height} pixels; the limit is {maxPixels} pixels.", cause);
        }
        if (Math.Max(width, height) > limits.MaxSide)
        {
            throw new ImageRejectedException(ImageRejection.SideTooLong,
                $"The {format} image is {width}x{height} pixels; no side may be longer than {limits.MaxSide} pixels. Crop it nearer to the part to classify.", cause);
        }
    }

    /// <summary>Above this many pixels an image's file must hold at least one byte per <see cref="MaxPixelsPerByte"/> pixels.</summary>
    public const long CompressionCheckedAbove = 1_000_000;

    /// <summary>
    /// The most pixels one byte of file may declare. Decoding costs by the pixel, sending by the byte: a lossless WebP of
    /// one colour declares 25 megapixels in 38 bytes and took 1-2 s of a core to decode, so a few hundred bytes of such
    /// files held every turn to decode. Photographs hold a pixel in a byte or less (a JPEG of a blank page: about 85 pixels
    /// a byte); PNG's deflate cannot go past about 1,000 and GIF's LZW about 2,700.
    /// </summary>
    public const long MaxPixelsPerByte = 4096;

    private static void RefuseCompression(long pixels, long fileBytes, string format)
    {
        if (pixels > CompressionCheckedAbove && pixels > fileBytes * MaxPixelsPerByte)
        {
            throw new ImageRejectedException(ImageRejection.TooManyPixels,
                $"The {format} image declares {pixels} pixels in {fileBytes} bytes, more than {MaxPixelsPerByte} pixels a byte: no photograph " +
                "compresses so far, and decoding it would cost far more than sending it. Send it as an ordinary photo file.");
        }
    }

    /// <summary>The header's size, format and metadata; an image ImageSharp cannot identify is refused for why, its size first.</summary>
    private static (int Width, int Height, IImageFormat Format, ImageMetadata Metadata) Identify(ReadOnlyMemory<byte> bytes, ImageLimits limits)
    {
        IImageInfo? info;
        IImageFormat? format;
        try
        {
            info = Image.Identify(Configuration, AsStream(bytes), out format);
        }
        catch (Exception exception) when (exception is not OutOfMemoryException)
        {
            if (Image.DetectFormat(Configuration, bytes.Span) is { } detected)
            {
                // ImageSharp does not identify a JPEG or GIF with a side of 0, nor a BMP larger than its bytes: the size says why.
                if (DeclaredSize.Read(bytes.Span, detected) is { } declared) RefuseSize(declared.Width, declared.Height, DisplayName(detected), limits, exception);
                // A header cut short (e.g. a TIFF whose directory comes last) is a truncated upload, not a corrupt one.
                if (ImageCompleteness.FindMissingData(bytes.Span, detected) is { } missing)
                {
                    throw new ImageRejectedException(ImageRejection.Truncated, $"The {DisplayName(detected)} image is truncated: {missing}.", exception);
                }
            }
            throw new ImageRejectedException(ImageRejection.NotDecodable, $"The image header cannot be read: {Reason(exception)}", exception);
        }
        if (info is null || format is null)
        {
            throw new ImageRejectedException(ImageRejection.NotDecodable,
                "The body is not an image in a supported format (PNG, JPEG, GIF, BMP, WebP or TIFF).");
        }
        return (info.Width, info.Height, format, info.Metadata);
    }

    /// <summary>
    /// Why the decoder refused a file, for the client, in one line: ImageSharp's own refusals (and what it does not
    /// support, e.g. a compression) say what is wrong with it, in their first line (an unrecognised file's message goes on
    /// to list every decoder); anything else it throws on a malformed file (a null reference, a division by a field of 0,
    /// a directory read twice) would only puzzle the reader.
    /// </summary>
    private static string Reason(Exception exception) => exception switch
    {
        UnknownImageFormatException => "its data is not an image in any format read here",
        ImageFormatException or NotSupportedException => exception.Message.Split('\n')[0].Trim(),
        _ => "its fields contradict each other (the decoder stopped on them)",
    };

    /// <summary>The format's name as people write it (ImageSharp says "Webp").</summary>
    private static string DisplayName(IImageFormat format) => format is WebpFormat ? "WebP" : format.Name;

    private static MemoryStream AsStream(ReadOnlyMemory<byte> bytes) =>
        System.Runtime.InteropServices.MemoryMarshal.TryGetArray(bytes, out var segment)
            ? new MemoryStream(segment.Array!, segment.Offset, segment.Count, writable: false)
            : new MemoryStream(bytes.ToArray(), writable: false);

    private static Configuration CreateConfiguration()
    {
        var configuration = new Configuration(
            new PngConfigurationModule(), new JpegConfigurationModule(), new GifConfigurationModule(),
            new BmpConfigurationModule(), new WebpConfigurationModule(), new TiffConfigurationModule())
        {
            // A small pool: requests come and go, the pool should not keep the largest image ever seen.
            MemoryAllocator = MemoryAllocator.Create(new MemoryAllocatorOptions { MaximumPoolSizeMegabytes = 64 }),
        };
        configuration.ImageFormatsManager.SetDecoder(GifFormat.Instance, new GifDecoder { DecodingMode = FrameDecodingMode.First });
        configuration.ImageFormatsManager.SetDecoder(TiffFormat.Instance, new TiffDecoder { DecodingMode = FrameDecodingMode.First });
        return configuration;
    }
}
