using System.Buffers;
using System.Buffers.Binary;
using System.IO.Compression;

namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// Whether a PNG's image data inflates to every row its header declares, judged before decoding. ImageSharp 2.1 paints
/// the rows it lacks black, and for an interlaced image it waits forever for them (two such uploads held both decoding
/// threads for good), whether the data ends early or breaks off where it is damaged; Pillow (the trainer's decoder)
/// refuses both. The image data is the first run of consecutive IDAT chunks, as ImageSharp reads it: an IDAT after
/// another chunk is not read. It is inflated only as far as the rows: a deflate bomb's remainder is not.
/// </summary>
public static class PngRows
{
    private static readonly (long X, long Y, (long X, long Y) Step)[] Adam7Passes =
        [(0, 0, (8, 8)), (4, 0, (8, 8)), (0, 4, (4, 8)), (2, 0, (4, 4)), (0, 2, (2, 4)), (1, 0, (2, 2)), (0, 1, (1, 2))];

    /// <summary>
    /// Why the image data does not give every row (one sentence) and whether that is a cut (<see cref="ImageRejection.Truncated"/>)
    /// or damage (<see cref="ImageRejection.NotDecodable"/>); null when it gives them all, or when the header or the chunks
    /// cannot be read this way (the other checks and the decoder judge those).
    /// </summary>
    public static (ImageRejection Rejection, string Reason)? FindUnreadable(ReadOnlySpan<byte> file)
    {
        var imageData = new List<(int Start, int Length)>();
        foreach (var chunk in new PngChunks(file))
        {
            if (chunk.Is("IDAT"u8)) imageData.Add((chunk.DataStart, chunk.Length));
            else if (imageData.Count > 0) break;
        }
        if (imageData.Count == 0) return null;
        const int headerData = 16;   // signature, IHDR's length and type
        if (file.Length < headerData + 13 || !file.Slice(12, 4).SequenceEqual("IHDR"u8)) return null;
        var header = file[headerData..];
        var (width, height) = (BinaryPrimitives.ReadUInt32BigEndian(header), BinaryPrimitives.ReadUInt32BigEndian(header[4..]));
        var (bitDepth, colorType, interlaced) = (header[8], header[9], header[12] == 1);
        int? channels = colorType switch { 0 => 1, 2 => 3, 3 => 1, 4 => 2, 6 => 4, _ => null };
        if (channels is null || bitDepth is not (1 or 2 or 4 or 8 or 16)) return null;
        var bitsPerPixel = channels.Value * bitDepth;

        // Each row is a filter byte and its pixels; an interlaced image is seven smaller images (Adam7) one after another.
        long RowsBytes(long passWidth, long passHeight) => passWidth == 0 || passHeight == 0 ? 0 : passHeight * (1 + (passWidth * bitsPerPixel + 7) / 8);
        var needed = !interlaced
            ? RowsBytes(width, height)
            : Adam7Passes.Sum(pass => RowsBytes((width - pass.X + pass.Step.X - 1) / pass.Step.X, (height - pass.Y + pass.Step.Y - 1) / pass.Step.Y));

        var compressedLength = imageData.Sum(chunk => chunk.Length);
        var compressed = ArrayPool<byte>.Shared.Rent(Math.Max(compressedLength, 1));
        long inflated = 0;
        try
        {
            var written = 0;
            foreach (var (start, length) in imageData)
            {
                file.Slice(start, length).CopyTo(compressed.AsSpan(written));
                written += length;
            }
            using var zlib = new ZLibStream(new MemoryStream(compressed, 0, compressedLength, writable: false), CompressionMode.Decompress);
            Span<byte> sink = stackalloc byte[8192];
            // Never past the rows: Pillow inflates row by row and stops at the last, so damage in data after them is not
            // its concern, nor this check's. Where the stream ends right at the last row, zlib goes on to check its
            // checksum in that same read, as it does for Pillow (which refuses a wrong one); a byte more, and neither does.
            while (inflated < needed && zlib.Read(sink[..(int)Math.Min(sink.Length, needed - inflated)]) is var count and > 0) inflated += count;
        }
        catch (Exception error) when (error is InvalidDataException or IOException)
        {
            // zlib refuses the data: a wrong block type or distance, or a wrong checksum at the stream's end. (ZLibException,
            // an IOException, is .NET's answer to a preset dictionary.)
            return (ImageRejection.NotDecodable,
                $"its image data is damaged: zlib refuses it before it gives the {needed} bytes of the {width}x{height} pixels it declares, or as they end (a wrong checksum)");
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(compressed);
        }
        return inflated < needed
            ? (ImageRejection.Truncated, $"its image data inflates to {inflated} bytes, but the {width}x{height} pixels it declares need {needed}")
            : null;
    }
}
