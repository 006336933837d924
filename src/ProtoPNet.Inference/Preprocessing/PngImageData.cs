using System.Buffers.Binary;

namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// A PNG's image data may be split across IDAT chunks anywhere, even into a first chunk of 0 or 1 bytes; ImageSharp reads
/// the zlib header from the first chunk alone and refused such a sound file, which Pillow reads. The file's run of IDAT
/// chunks is then merged into one before decoding; any other file passes as it is.
/// </summary>
public static class PngImageData
{
    /// <summary>The file itself, or, when its first IDAT chunk holds fewer than the zlib header's 2 bytes, a copy whose IDAT chunks are one.</summary>
    public static ReadOnlyMemory<byte> WithShortFirstChunkMerged(ReadOnlyMemory<byte> bytes)
    {
        var file = bytes.Span;
        if (!file.StartsWith(PngText.Signature)) return bytes;
        int runStart = -1, runEnd = -1;
        long dataBytes = 0;
        for (long position = PngText.Signature.Length; position + 12 <= file.Length;)
        {
            var length = BinaryPrimitives.ReadUInt32BigEndian(file[(int)position..]);
            var end = position + 12 + length;
            if (end > file.Length) return bytes;   // truncated: the completeness check says so
            var isImageData = file.Slice((int)position + 4, 4).SequenceEqual("IDAT"u8);
            if (isImageData && runStart < 0)
            {
                if (length >= 2) return bytes;   // the usual case: nothing to merge
                runStart = (int)position;
            }
            if (isImageData) dataBytes += length;
            else if (runStart >= 0)
            {
                runEnd = (int)position;
                break;
            }
            position = end;
        }
        if (runStart < 0 || runEnd < 0) return bytes;

        var merged = new byte[runStart + 12 + dataBytes + (file.Length - runEnd)];
        file[..runStart].CopyTo(merged);
        var chunk = merged.AsSpan(runStart, 12 + (int)dataBytes);
        BinaryPrimitives.WriteUInt32BigEndian(chunk, (uint)dataBytes);
        "IDAT"u8.CopyTo(chunk[4..]);
        var written = 8;
        for (var position = runStart; position < runEnd;)
        {
            var length = (int)BinaryPrimitives.ReadUInt32BigEndian(file[position..]);
            file.Slice(position + 8, length).CopyTo(chunk[written..]);
            written += length;
            position += 12 + length;
        }
        BinaryPrimitives.WriteUInt32BigEndian(chunk[written..], PngChecksums.Crc(chunk[4..written]));
        file[runEnd..].CopyTo(merged.AsSpan(runStart + chunk.Length));
        return merged;
    }
}
