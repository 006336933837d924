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
    /// completeness check, which names what is missing). An animation without frames, or whose first frame does not
    /// fit its canvas, is refused as libwebp refuses it.
    /// </summary>
    public static WebpFirstFrame? Find(ReadOnlySpan<byte> file)
    {
        if (file.Length < 30 || !file.StartsWith("RIFF"u8) || !file[8..12].SequenceEqual("WEBP"u8) || !file[12..16].SequenceEqual("VP8X"u8)) return null;
        var flags = file[20];
        if ((flags & AnimationFlag) == 0) return null;
        if (ImageCompleteness.FindMissingData(file, SixLabors.ImageSharp.Formats.Webp.WebpFormat.Instance) is not null) return null;
        var canvasWidth = UInt24(file[24..]) + 1;
        var canvasHeight = UInt24(file[27..]) + 1;
        ReadOnlySpan<byte> exif = default;
        ReadOnlySpan<byte> frame = default;
        foreach (var (typeAt, payload) in Chunks(file, 12))
        {
            var type = file.Slice(typeAt, 4);
            if (type.SequenceEqual("EXIF"u8)) exif = file[payload];
            // Pillow writes an animation's EXIF after JPEG's "Exif\0\0" marker, which libwebp and Pillow pass over.
            if (exif.StartsWith("Exif\0\0"u8)) exif = exif[6..];
            else if (type.SequenceEqual("ANMF"u8) && frame.IsEmpty) frame = file[payload];
        }
        if (frame.Length < 16) throw NotDecodable("it has no frame");
        var (x, y) = (UInt24(frame) * 2, UInt24(frame[3..]) * 2);
        var (width, height) = (UInt24(frame[6..]) + 1, UInt24(frame[9..]) + 1);
        if (x + width > canvasWidth || y + height > canvasHeight)
        {
            throw NotDecodable($"its first frame ({width}x{height} at {x},{y}) does not fit its {canvasWidth}x{canvasHeight} canvas");
        }
        // The frame's image: an ALPH chunk and a VP8 one (lossy), or one VP8L (lossless); other chunks are passed over.
        ReadOnlySpan<byte> alpha = default;
        ReadOnlySpan<byte> bitstream = default;
        var bitstreamType = "VP8 "u8;
        foreach (var (typeAt, payload) in Chunks(frame, 16))
        {
            var type = frame.Slice(typeAt, 4);
            if (type.SequenceEqual("ALPH"u8) && alpha.IsEmpty) alpha = frame[payload];
            else if (type.SequenceEqual("VP8 "u8) || type.SequenceEqual("VP8L"u8))
            {
                bitstream = frame[payload];
                bitstreamType = type.SequenceEqual("VP8L"u8) ? "VP8L"u8 : "VP8 "u8;
                break;
            }
        }
        if (bitstream.IsEmpty) throw NotDecodable("its first frame holds no image");
        if (bitstreamType.SequenceEqual("VP8L"u8)) alpha = default;   // a lossless image carries its own alpha

        var still = new List<byte>(bitstream.Length + alpha.Length + exif.Length + 64);
        var extendedFlags = (byte)((alpha.IsEmpty ? 0 : AlphaFlag) | (exif.IsEmpty ? 0 : ExifFlag));
        Span<byte> header = stackalloc byte[10];
        header.Clear();
        header[0] = extendedFlags;
        WriteUInt24(header[4..], width - 1);
        WriteUInt24(header[7..], height - 1);
        AddChunk(still, "VP8X"u8, header);
        if (!alpha.IsEmpty) AddChunk(still, "ALPH"u8, alpha);
        AddChunk(still, bitstreamType, bitstream);
        if (!exif.IsEmpty) AddChunk(still, "EXIF"u8, exif);
        var riff = new byte[12 + still.Count];
        "RIFF"u8.CopyTo(riff);
        BinaryPrimitives.WriteUInt32LittleEndian(riff.AsSpan(4), (uint)(4 + still.Count));
        "WEBP"u8.CopyTo(riff.AsSpan(8));
        still.CopyTo(riff, 12);
        return new WebpFirstFrame(riff, canvasWidth, canvasHeight, x, y, (flags & AlphaFlag) != 0);
    }

    /// <summary>
    /// The decoded <paramref name="frame"/> on the canvas, as libwebp shows it: the rest of the canvas transparent, and
    /// every pixel opaque when the file says the animation has no alpha (Pillow then reads the canvas as RGB).
    /// </summary>
    public Image<Rgba32> OnCanvas(Image<Rgba32> frame, Configuration configuration)
    {
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
