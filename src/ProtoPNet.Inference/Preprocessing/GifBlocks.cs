namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// Whether a GIF's blocks lead to its first image as Pillow (the trainer's decoder) reads them: after the header and
/// global colour table, extension blocks (introduced by 21, then a label and sub-blocks ending with a zero length) and
/// stray bytes are passed over up to the first image descriptor (2C). ImageSharp reads extensions differently (a
/// graphic control extension by a fixed length, an unknown label not at all) and so can come upon a 2C byte inside
/// compressed data and decode garbage from it, where Pillow reaches the trailer (3B) or the file's end first and refuses
/// the file; Pillow also refuses a graphic control extension too short for its fields, an application extension
/// (before the first image) without data, and an LZW minimum code size above 11. A damaged upload was classified while
/// the trainer could not read it.
/// </summary>
public static class GifBlocks
{
    private const byte Extension = 0x21, ImageDescriptor = 0x2C, Trailer = 0x3B;
    private const byte GraphicControl = 0xF9, Comment = 0xFE, Application = 0xFF, PlainText = 0x01;

    /// <summary>The most runs of stray bytes or undefined extensions before the first image that are left out (more are left to the decoder to refuse).</summary>
    private const int MaxStrayRuns = 256;

    /// <summary>GIF's LZW codes have at most 12 bits: a minimum code size above 11 starts beyond them.</summary>
    private const int MaxMinimumCodeSize = 11;

    /// <summary>
    /// What keeps Pillow from the first image, or from decoding it (one sentence), or null: the blocks up to it, and its
    /// LZW minimum code size (Pillow refuses one above 11, "broken data stream" or "codec configuration error";
    /// ImageSharp decoded garbage from it).
    /// </summary>
    public static string? FindCorruption(ReadOnlySpan<byte> file)
    {
        if (WalkToFirstImage(file, out var descriptor) is { } stopped) return stopped;
        if (descriptor < 0 || descriptor + 10 > file.Length) return null;
        var flags = file[(int)descriptor + 9];
        var codeSize = descriptor + 10 + ((flags & 0x80) != 0 ? 3L << ((flags & 7) + 1) : 0);
        if (codeSize >= file.Length) return null;   // cut short: the completeness check says so
        var bits = file[(int)codeSize];
        return bits > MaxMinimumCodeSize
            ? $"its first image's LZW minimum code size is {bits}, beyond GIF's codes of at most 12 bits (the most it can be is {MaxMinimumCodeSize})"
            : null;
    }

    /// <summary>Where the first image descriptor (2C) lies, reached as Pillow reaches it; null when it is not reached.</summary>
    public static int? FirstImageDescriptor(ReadOnlySpan<byte> file) =>
        WalkToFirstImage(file, out var descriptor) is null && descriptor >= 0 ? (int)descriptor : null;

    /// <summary>
    /// The file without what Pillow passes over before the first image and ImageSharp cannot ("No data"): stray bytes,
    /// and extensions of a label GIF does not define; any other file (also one whose first image Pillow does not reach)
    /// as it is.
    /// </summary>
    public static ReadOnlyMemory<byte> WithoutStrayBlocks(ReadOnlyMemory<byte> bytes)
    {
        var strays = new List<(int Start, int End)>();
        // Bounded: each run of strays is one entry, and a file of more runs than any writer leaves is left as it is.
        if (WalkToFirstImage(bytes.Span, out var descriptor, strays) is not null || descriptor < 0 || strays.Count is 0 or > MaxStrayRuns) return bytes;
        var kept = new byte[bytes.Length - strays.Sum(stray => stray.End - stray.Start)];
        var (from, written) = (0, 0);
        foreach (var (start, end) in strays.Append((bytes.Length, bytes.Length)))
        {
            bytes.Span[from..start].CopyTo(kept.AsSpan(written));
            written += start - from;
            from = end;
        }
        return kept;
    }

    /// <summary>
    /// The blocks up to the first image descriptor: why Pillow stops before it (one sentence), or null and where it lies
    /// (-1 for no GIF); <paramref name="strays"/>, when given, gets the stray bytes and undefined extensions passed over.
    /// </summary>
    private static string? WalkToFirstImage(ReadOnlySpan<byte> file, out long descriptor, List<(int Start, int End)>? strays = null)
    {
        descriptor = -1;
        if (file.Length < 13 || !(file.StartsWith("GIF87a"u8) || file.StartsWith("GIF89a"u8))) return null;
        long position = 13;
        if ((file[10] & 0x80) != 0) position += 3L << ((file[10] & 7) + 1);
        while (true)
        {
            if (position >= file.Length) return $"its blocks reach the end of the file (byte {file.Length}) before any image";
            var at = position;
            var introducer = file[(int)position++];
            if (introducer == Trailer) return $"its blocks reach the trailer (3B) at byte {at} before any image";
            if (introducer == ImageDescriptor)
            {
                descriptor = at;
                return null;   // a descriptor cut short is the completeness check's
            }
            if (introducer != Extension)
            {
                AddStray(strays, at, position);            // a stray byte, passed over as Pillow does
                continue;
            }
            if (position >= file.Length) return $"its extension at byte {at} ends the file before its label";
            var label = file[(int)position++];
            var first = SubBlock(file, ref position, out var hasFirst);
            if (label == GraphicControl)
            {
                // Pillow reads the flags, the delay (bytes 1-2) and, when the flags say so, the transparent index (byte 3).
                var needed = first.Length > 0 && (first[0] & 1) != 0 ? 4 : 3;
                if (first.Length < needed) return $"its graphic control extension at byte {at} has {first.Length} bytes of fields, fewer than {needed}";
            }
            else if (label == Comment)
            {
                // Pillow reads a comment's sub-blocks up to the zero length, and no further.
                if (first.IsEmpty) continue;
            }
            else if (label == Application)
            {
                if (!hasFirst) return $"its application extension at byte {at} has no identifier";
                if (first.StartsWith("NETSCAPE2.0"u8))
                {
                    SubBlock(file, ref position, out var hasLoop);
                    if (!hasLoop) return $"its NETSCAPE2.0 application extension at byte {at} has no loop data";
                }
            }
            // Then sub-blocks up to a zero length; Pillow reads on even after a first one of zero length, as this does.
            while (!SubBlock(file, ref position, out _).IsEmpty)
            {
            }
            if (label is not (GraphicControl or Comment or Application or PlainText)) AddStray(strays, at, Math.Min(position, file.Length));
        }
    }

    /// <summary>Adds bytes [start, end) to <paramref name="strays"/>, joined to the run before when they follow it; none past <see cref="MaxStrayRuns"/> runs.</summary>
    private static void AddStray(List<(int Start, int End)>? strays, long start, long end)
    {
        if (strays is null) return;
        if (strays.Count > 0 && strays[^1].End == start) strays[^1] = (strays[^1].Start, (int)end);
        else if (strays.Count <= MaxStrayRuns) strays.Add(((int)start, (int)end));
    }

    /// <summary>
    /// The data of the sub-block at <paramref name="position"/>, and moves past it; <paramref name="present"/> is false for
    /// a zero length or the file's end (Pillow's None), and the data may be cut short by the file's end.
    /// </summary>
    private static ReadOnlySpan<byte> SubBlock(ReadOnlySpan<byte> file, ref long position, out bool present)
    {
        present = false;
        if (position >= file.Length) return default;
        var length = file[(int)position++];
        if (length == 0) return default;
        present = true;
        var start = Math.Min(position, file.Length);
        position += length;
        return file[(int)start..(int)Math.Min(position, file.Length)];
    }
}
