using System.Buffers.Binary;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// The first frame of an animated WebP, which the decoder (ImageSharp 2.1) refuses whole: its frame data rewrapped as a
/// still WebP, and where the frame lies on the animation's canvas. The trainer reads such files with Pillow, which
/// shows the first frame on the whole canvas (libwebp's animation decoder: the canvas starts transparent, the first
/// frame is written onto it unblended), so the service answers for the picture the trainer would have seen.
/// </summary>
public sealed record WebpFirstFrame(byte[] Still, int CanvasWidth, int CanvasHeight, int X, int Y, bool CanvasHasAlpha)
{
    private const byte AnimationFlag = 0x02;
    private const byte AlphaFlag = 0x10;
    private const byte ExifFlag = 0x08;

    /// <summary>
    /// The first frame of a complete animated WebP; null for any other file (a truncated animation is left to the
    /// completeness check, which names what is missing). An animation that libwebp's demuxer would not show is refused
    /// (NotDecodable), as the trainer's Pillow refuses it: a VP8X header that is not 10 bytes, a second one, no ANIM
    /// chunk before the frames, no frame, a frame without an image or whose image (by its own size, as libwebp reads
    /// it, not its ANMF header's) does not fit the canvas. Only what the RIFF header covers is read.
    /// </summary>
    public static WebpFirstFrame? Find(ReadOnlySpan<byte> file)
    {
        if (DeclaredCanvas(file) is not var (canvasWidth, canvasHeight)) return null;
        var flags = file[20];
        if (ImageCompleteness.FindMissingData(file, SixLabors.ImageSharp.Formats.Webp.WebpFormat.Instance) is not null) return null;
        if (BinaryPrimitives.ReadUInt32LittleEndian(file[16..]) != 10) throw NotDecodable("its VP8X header is not 10 bytes long");
        var riff = file[..(int)Math.Min(file.Length, 8L + BinaryPrimitives.ReadUInt32LittleEndian(file[4..]))];
        ReadOnlySpan<byte> exif = default;
        Frame? first = null;
        var animated = false;
        foreach (var (typeAt, payload) in Chunks(riff, 30))
        {
            var type = riff.Slice(typeAt, 4);
            if (type.SequenceEqual("VP8X"u8))
            {
                throw NotDecodable("it has two VP8X headers");
            }
            if (type.SequenceEqual("ANIM"u8))
            {
                if (riff[payload].Length < 6) throw NotDecodable("its ANIM chunk is shorter than 6 bytes");
                animated = true;
            }
            else if (type.SequenceEqual("ANMF"u8))
            {
                if (!animated) throw NotDecodable("its frames come before its ANIM chunk");
                // Every frame is checked, as libwebp checks them before it shows the first.
                var frame = ReadFrame(riff, payload, canvasWidth, canvasHeight);
                first ??= frame;
            }
            else if (type.SequenceEqual("EXIF"u8))
            {
                exif = riff[payload];
                // Pillow writes an animation's EXIF after JPEG's "Exif\0\0" marker, which libwebp and Pillow pass over.
                if (exif.StartsWith("Exif\0\0"u8)) exif = exif[6..];
            }
        }
        if (first is not { } chosen) throw NotDecodable("it has no frame");
        var alpha = riff.Slice(chosen.Alpha.Start, chosen.Alpha.Length);
        var bitstream = riff.Slice(chosen.Bitstream.Start, chosen.Bitstream.Length);
        return new WebpFirstFrame(StillOf(chosen, alpha, bitstream, exif), canvasWidth, canvasHeight, chosen.X, chosen.Y, (flags & AlphaFlag) != 0);
    }

    /// <summary>
    /// The canvas size an animated WebP's VP8X header declares, read from the header alone (the size a request is judged
    /// by before it is decoded); null for any other file.
    /// </summary>
    public static (int Width, int Height)? DeclaredCanvas(ReadOnlySpan<byte> file) =>
        file.Length >= 30 && file.StartsWith("RIFF"u8) && file[8..12].SequenceEqual("WEBP"u8) && file[12..16].SequenceEqual("VP8X"u8)
        && (file[20] & AnimationFlag) != 0
            ? (UInt24(file[24..]) + 1, UInt24(file[27..]) + 1)
            : null;

    /// <summary>A frame: where it lies, its image's own size, and where its ALPH (empty for none) and image chunks' payloads are in the file.</summary>
    private readonly record struct Frame(int X, int Y, int Width, int Height, bool Lossless, (int Start, int Length) Alpha, (int Start, int Length) Bitstream);

    /// <summary>The frame of the ANMF chunk whose payload is <paramref name="payloadRange"/> of <paramref name="riff"/>, checked against the canvas.</summary>
    private static Frame ReadFrame(ReadOnlySpan<byte> riff, Range payloadRange, int canvasWidth, int canvasHeight)
    {
        var payload = riff[payloadRange];
        var offset = payloadRange.Start.Value;
        if (payload.Length < 16) throw NotDecodable("a frame's header is shorter than 16 bytes");
        var (x, y) = (UInt24(payload) * 2, UInt24(payload[3..]) * 2);
        // The frame's image: an ALPH chunk and a VP8 one (lossy), or one VP8L (lossless); other chunks are passed over.
        Range? alpha = null;
        foreach (var (typeAt, range) in Chunks(payload, 16))
        {
            var type = payload.Slice(typeAt, 4);
            if (type.SequenceEqual("ALPH"u8))
            {
                alpha ??= range;
                continue;
            }
            if (!type.SequenceEqual("VP8 "u8) && !type.SequenceEqual("VP8L"u8)) continue;
            var lossless = type.SequenceEqual("VP8L"u8);
            var image = payload[range];
            if (ImageSize(image, lossless) is not var (width, height)) throw NotDecodable("a frame's image header cannot be read");
            if (x + width > canvasWidth || y + height > canvasHeight)
            {
                throw NotDecodable($"a frame ({width}x{height} at {x},{y}) does not fit its {canvasWidth}x{canvasHeight} canvas");
            }
            // A lossless image carries its own alpha: an ALPH chunk beside it is passed over.
            var alphaAt = alpha is { } a && !lossless ? (offset + a.Start.Value, a.End.Value - a.Start.Value) : (0, 0);
            return new Frame(x, y, width, height, lossless, alphaAt, (offset + range.Start.Value, image.Length));
        }
        throw NotDecodable("a frame holds no image");
    }

    /// <summary>
    /// The size a VP8L (lossless) or VP8 (lossy key frame) image declares, as libwebp reads it; null when its header
    /// is not one.
    /// </summary>
    private static (int Width, int Height)? ImageSize(ReadOnlySpan<byte> image, bool lossless)
    {
        if (lossless)
        {
            if (image.Length < 5 || image[0] != 0x2F) return null;
            var bits = BinaryPrimitives.ReadUInt32LittleEndian(image[1..]);
            return ((int)(bits & 0x3FFF) + 1, (int)((bits >> 14) & 0x3FFF) + 1);
        }
        if (image.Length < 10 || image[3] != 0x9D || image[4] != 0x01 || image[5] != 0x2A) return null;
        return (BinaryPrimitives.ReadUInt16LittleEndian(image[6..]) & 0x3FFF, BinaryPrimitives.ReadUInt16LittleEndian(image[8..]) & 0x3FFF);
    }

    /// <summary>A still WebP of the frame's image (and its alpha and the animation's EXIF), sized as the image says.</summary>
    private static byte[] StillOf(Frame frame, ReadOnlySpan<byte> alpha, ReadOnlySpan<byte> bitstream, ReadOnlySpan<byte> exif)
    {
        var still = new List<byte>(bitstream.Length + alpha.Length + exif.Length + 64);
        Span<byte> header = stackalloc byte[10];
        header.Clear();
        header[0] = (byte)((alpha.IsEmpty ? 0 : AlphaFlag) | (exif.IsEmpty ? 0 : ExifFlag));
        WriteUInt24(header[4..], frame.Width - 1);
        WriteUInt24(header[7..], frame.Height - 1);
        AddChunk(still, "VP8X"u8, header);
        if (!alpha.IsEmpty) AddChunk(still, "ALPH"u8, alpha);
        AddChunk(still, frame.Lossless ? "VP8L"u8 : "VP8 "u8, bitstream);
        if (!exif.IsEmpty) AddChunk(still, "EXIF"u8, exif);
        var riff = new byte[12 + still.Count];
        "RIFF"u8.CopyTo(riff);
        BinaryPrimitives.WriteUInt32LittleEndian(riff.AsSpan(4), (uint)(4 + still.Count));
        "WEBP"u8.CopyTo(riff.AsSpan(8));
        still.CopyTo(riff, 12);
        return riff;
    }

    /// <summary>
    /// The decoded <paramref name="frame"/> on the canvas, as libwebp shows it: the rest of the canvas transparent, and
    /// every pixel opaque when the file says the animation has no alpha (Pillow then reads the canvas as RGB).
    /// </summary>
    public Image<Rgba32> OnCanvas(Image<Rgba32> frame, Configuration configuration)
    {
        if (X + frame.Width > CanvasWidth || Y + frame.Height > CanvasHeight)
        {
            // Find checked the size the image declares; the decoder decodes at that size. Said, never a crash, if not.
            throw NotDecodable($"its first frame ({frame.Width}x{frame.Height} at {X},{Y}) does not fit its {CanvasWidth}x{CanvasHeight} canvas");
        }
        var canvas = new Image<Rgba32>(configuration, CanvasWidth, CanvasHeight);   // cleared: transparent black
        var (x, y, opaque) = (X, Y, !CanvasHasAlpha);
        frame.ProcessPixelRows(canvas, (source, target) =>
        {
            for (var row = 0; row < source.Height; row++) source.GetRowSpan(row).CopyTo(target.GetRowSpan(y + row)[x..]);
            if (!opaque) return;
            for (var row = 0; row < target.Height; row++)
            {
                foreach (ref var pixel in target.GetRowSpan(row)) pixel.A = 255;
            }
        });
        return canvas;
    }

    /// <summary>
    /// The chunks from <paramref name="start"/> on, as where the type is and the payload's range; each chunk is padded to
    /// an even length. The completeness check has made sure every chunk is whole.
    /// </summary>
    private static List<(int TypeAt, Range Payload)> Chunks(ReadOnlySpan<byte> data, int start)
    {
        var chunks = new List<(int, Range)>();
        var position = start;
        while (position + 8 <= data.Length)
        {
            var size = BinaryPrimitives.ReadUInt32LittleEndian(data[(position + 4)..]);
            if (size > (uint)(data.Length - position - 8)) break;
            chunks.Add((position, (position + 8)..(position + 8 + (int)size)));
            position += 8 + (int)size + (int)(size & 1);
        }
        return chunks;
    }

    private static void AddChunk(List<byte> output, ReadOnlySpan<byte> type, ReadOnlySpan<byte> payload)
    {
        output.AddRange(type);
        Span<byte> size = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(size, (uint)payload.Length);
        output.AddRange(size);
        output.AddRange(payload);
        if ((payload.Length & 1) == 1) output.Add(0);
    }

    private static int UInt24(ReadOnlySpan<byte> bytes) => bytes[0] | bytes[1] << 8 | bytes[2] << 16;

    private static void WriteUInt24(Span<byte> bytes, int value)
    {
        bytes[0] = (byte)value;
        bytes[1] = (byte)(value >> 8);
        bytes[2] = (byte)(value >> 16);
    }

    private static ImageRejectedException NotDecodable(string why) =>
        new(ImageRejection.NotDecodable, $"The WebP animation cannot be decoded: {why}.");
}
