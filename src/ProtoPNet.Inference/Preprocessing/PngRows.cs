using System.Buffers;
using System.Buffers.Binary;
using System.IO.Compression;

namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// Whether a PNG's image data inflates to every row its header declares, judged before decoding. ImageSharp 2.1 paints
/// the rows it lacks black, and for an interlaced image it waits forever for them (two such uploads held both decoding
/// threads for good). Pillow (the trainer's decoder) refuses image data that breaks off or is damaged, and reads a
/// stream that ends soundly (its end and checksum) between two rows before the last with those rows as zeros: such a
/// file is written anew with them (<see cref="WithMissingRowsAsZeros"/>). The image data is the first run of consecutive IDAT chunks,
/// as ImageSharp reads it: an IDAT after another chunk is not read. It is inflated only as far as the rows: a deflate
/// bomb's remainder is not.
/// </summary>
public static class PngRows
{
    private static readonly (long X, long Y, (long X, long Y) Step)[] Adam7Passes =
        [(0, 0, (8, 8)), (4, 0, (8, 8)), (0, 4, (4, 8)), (2, 0, (4, 4)), (0, 2, (2, 4)), (1, 0, (2, 2)), (0, 1, (1, 2))];

    /// <summary>The rows' bytes of a stream written anew whole (a larger image that ends early stays refused).</summary>
    private const long MaxRewrittenBytes = 64 << 20;

    /// <summary>
    /// Why the image data does not give every row (one sentence) and whether that is a cut (<see cref="ImageRejection.Truncated"/>)
    /// or damage (<see cref="ImageRejection.NotDecodable"/>); null when it gives them all, or when the header or the chunks
    /// cannot be read this way (the other checks and the decoder judge those).
    /// </summary>
    public static (ImageRejection Rejection, string Reason)? FindUnreadable(ReadOnlySpan<byte> file)
    {
        if (Layout.Of(file) is not { } layout) return null;
        var compressed = ArrayPool<byte>.Shared.Rent(Math.Max(layout.CompressedLength, 1));
        long inflated = 0;
        try
        {
            layout.CopyCompressed(file, compressed);
            using var zlib = new ZLibStream(new MemoryStream(compressed, 0, layout.CompressedLength, writable: false), CompressionMode.Decompress);
            Span<byte> sink = stackalloc byte[8192];
            // Never past the rows: Pillow inflates row by row and stops at the last, so damage in data after them is not
            // its concern, nor this check's. Where the stream ends right at the last row, zlib goes on to check its
            // checksum in that same read, as it does for Pillow (which refuses a wrong one); a byte more, and neither does.
            while (inflated < layout.Needed && zlib.Read(sink[..(int)Math.Min(sink.Length, layout.Needed - inflated)]) is var count and > 0) inflated += count;
        }
        catch (Exception error) when (error is InvalidDataException or IOException)
        {
            // zlib refuses the data: a wrong block type or distance, or a wrong checksum at the stream's end. (ZLibException,
            // an IOException, is .NET's answer to a preset dictionary.)
            return (ImageRejection.NotDecodable,
                $"its image data is damaged: zlib refuses it before it gives the {layout.Needed} bytes of the {layout.Width}x{layout.Height} pixels it declares, or as they end (a wrong checksum)");
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(compressed);
        }
        return inflated < layout.Needed
            ? (ImageRejection.Truncated, $"its image data inflates to {inflated} bytes, but the {layout.Width}x{layout.Height} pixels it declares need {layout.Needed}")
            : null;
    }

    /// <summary>
    /// A copy whose image data is one IDAT chunk of every row, when the data is a sound zlib stream that ends (with its
    /// checksum) between two rows, after the first, before the last: the rows it gives, and zeros for the rest, as Pillow
    /// reads it. Null for data that breaks off, is damaged, gives no row, ends in the middle of one (Pillow refuses both:
    /// "image file is truncated"), gives every row, or is larger than 64 MB inflated; and where libdeflate, which tells a
    /// sound early end from a cut, is missing.
    /// </summary>
    public static ReadOnlyMemory<byte>? WithMissingRowsAsZeros(ReadOnlyMemory<byte> bytes)
    {
        var file = bytes.Span;
        if (Layout.Of(file) is not { } layout || layout.Needed > MaxRewrittenBytes || !LibDeflate.IsAvailable) return null;
        var compressed = new byte[layout.CompressedLength];
        layout.CopyCompressed(file, compressed);
        var rows = new byte[layout.Needed];
        using (var decompressor = new LibDeflate.Decompressor())
        {
            // Pillow reads the rows only when the stream ends between two of them, after the first; else "truncated".
            if (decompressor.Inflate(compressed, rows, out var inflated) != LibDeflate.Result.Success || inflated == 0 || inflated >= layout.Needed
                || layout.WholeRowsEnd(inflated) != inflated)
            {
                return null;
            }
        }
        using var deflated = new MemoryStream();
        using (var zlib = new ZLibStream(deflated, CompressionLevel.Fastest, leaveOpen: true)) zlib.Write(rows);
        var data = deflated.GetBuffer().AsSpan(0, (int)deflated.Length);

        var copy = new byte[layout.RunStart + 12 + data.Length + (file.Length - layout.RunEnd)];
        file[..layout.RunStart].CopyTo(copy);
        var chunk = copy.AsSpan(layout.RunStart, 12 + data.Length);
        BinaryPrimitives.WriteUInt32BigEndian(chunk, (uint)data.Length);
        "IDAT"u8.CopyTo(chunk[4..]);
        data.CopyTo(chunk[8..]);
        BinaryPrimitives.WriteUInt32BigEndian(chunk[(8 + data.Length)..], PngChecksums.Crc(chunk[4..(8 + data.Length)]));
        file[layout.RunEnd..].CopyTo(copy.AsSpan(layout.RunStart + chunk.Length));
        return copy;
    }

    /// <summary>What the header and the chunks say of the image data: its size, its rows, and where its IDAT chunks lie.</summary>
    private sealed record Layout(long Width, long Height, List<(int Start, int Length)> ImageData, long[] RowBytes, long[] PassRows)
    {
        /// <summary>The bytes of every row: a filter byte and its pixels, pass after pass for an interlaced image (Adam7).</summary>
        public long Needed { get; } = RowBytes.Zip(PassRows, (bytes, rows) => bytes * rows).Sum();

        public int CompressedLength => ImageData.Sum(chunk => chunk.Length);

        /// <summary>Where the run of IDAT chunks begins (its first length field) and ends (after its last CRC).</summary>
        public int RunStart => ImageData[0].Start - 8;

        public int RunEnd => ImageData[^1].Start + ImageData[^1].Length + 4;

        public void CopyCompressed(ReadOnlySpan<byte> file, Span<byte> into)
        {
            var written = 0;
            foreach (var (start, length) in ImageData)
            {
                file.Slice(start, length).CopyTo(into[written..]);
                written += length;
            }
        }

        /// <summary>Where the last row that the first <paramref name="inflated"/> bytes give whole ends (passes in order for an interlaced image).</summary>
        public long WholeRowsEnd(long inflated)
        {
            long end = 0;
            for (var pass = 0; pass < RowBytes.Length; pass++)
            {
                if (RowBytes[pass] == 0) continue;
                var whole = Math.Min(PassRows[pass], (inflated - end) / RowBytes[pass]);
                end += whole * RowBytes[pass];
                if (whole < PassRows[pass]) break;
            }
            return end;
        }

        /// <summary>The layout of a PNG's first run of image data; null when it has none, or a header this cannot read.</summary>
        public static Layout? Of(ReadOnlySpan<byte> file)
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
            var (width, height) = ((long)BinaryPrimitives.ReadUInt32BigEndian(header), (long)BinaryPrimitives.ReadUInt32BigEndian(header[4..]));
            var (bitDepth, colorType, interlaced) = (header[8], header[9], header[12] == 1);
            int? channels = colorType switch { 0 => 1, 2 => 3, 3 => 1, 4 => 2, 6 => 4, _ => null };
            if (channels is null || bitDepth is not (1 or 2 or 4 or 8 or 16)) return null;
            var bitsPerPixel = channels.Value * bitDepth;
            long RowBytes(long passWidth) => passWidth == 0 ? 0 : 1 + (passWidth * bitsPerPixel + 7) / 8;
            if (!interlaced) return new Layout(width, height, imageData, [RowBytes(width)], [height]);
            return new Layout(width, height, imageData,
                Adam7Passes.Select(pass => RowBytes((width - pass.X + pass.Step.X - 1) / pass.Step.X)).ToArray(),
                Adam7Passes.Select(pass => (width - pass.X + pass.Step.X - 1) / pass.Step.X == 0 ? 0 : (height - pass.Y + pass.Step.Y - 1) / pass.Step.Y).ToArray());
        }
    }
}
