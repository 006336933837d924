namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// A multi-page TIFF's later pages, which the service does not read (it classifies the first, the page the trainer's
/// Pillow opens) but which ImageSharp and the completeness check walked: a chain of directories that points back on
/// itself ("circular directory offsets"), past the file's end or into a cut page had the file refused, though the
/// trainer reads its first page. The first directory's pointer to the next is written as 0, in a copy: the file is read
/// as its first page alone.
/// </summary>
public static class TiffLaterImages
{
    /// <summary>The file itself when it is no TIFF, its first directory is cut, or it has one page; otherwise a copy without the later pages.</summary>
    public static ReadOnlyMemory<byte> WithFirstImageAlone(ReadOnlyMemory<byte> bytes)
    {
        if (TiffDirectory.First(bytes.Span) is not { } directory) return bytes;
        var next = directory.Entry(directory.Entries);
        var size = directory.Big ? 8 : 4;
        if (next + size > bytes.Length || !bytes.Span.Slice(next, size).ContainsAnyExcept((byte)0)) return bytes;   // cut: the completeness check says so
        var copy = bytes.ToArray();
        copy.AsSpan(next, size).Clear();
        return copy;
    }
}
