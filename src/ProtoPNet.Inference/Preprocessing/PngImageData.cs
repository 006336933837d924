using System.Buffers.Binary;

namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// Where ImageSharp refuses a PNG's image data that Pillow (the trainer's decoder) reads: the file is written anew so
/// both read it alike; any other file passes as it is.
/// </summary>
public static class PngImageData
{
    /// <summary>
    /// The image data may be split across IDAT chunks anywhere, even into a first chunk of 0 or 1 bytes; ImageSharp reads
    /// the zlib header from the first chunk alone and refused such a sound file. Its run of IDAT chunks is merged into one.
    /// </summary>
    /// <returns>The file itself, or, when its first IDAT chunk holds fewer than the zlib header's 2 bytes, a copy whose IDAT chunks are one.</returns>
    public static ReadOnlyMemory<byte> WithShortFirstChunkMerged(ReadOnlyMemory<byte> bytes)
    {
        var file = bytes.Span;
        if (!PngChunks.IsPng(file)) return bytes;
        int runStart = -1, runEnd = -1;
        long dataBytes = 0;
        foreach (var chunk in new PngChunks(file))
        {
            var isImageData = chunk.Is("IDAT"u8);
            if (isImageData && runStart < 0)
            {
                if (chunk.Length >= 2) return bytes;   // the usual case: nothing to merge
                runStart = chunk.Start;
            }
            if (isImageData) dataBytes += chunk.Length;
            else if (runStart >= 0)
            {
                runEnd = chunk.Start;
                break;
            }
        }
        // No run, or one cut short by the file's end (the completeness check says so).
        if (runStart < 0 || runEnd < 0) return bytes;

        var merged = new byte[runStart + 12 + dataBytes + (file.Length - runEnd)];
        file[..runStart].CopyTo(merged);
        var one = merged.AsSpan(runStart, 12 + (int)dataBytes);
        BinaryPrimitives.WriteUInt32BigEndian(one, (uint)dataBytes);
        "IDAT"u8.CopyTo(one[4..]);
        var written = 8;
        foreach (var chunk in new PngChunks(file))
        {
            if (chunk.Start < runStart) continue;
            if (chunk.Start >= runEnd) break;
            file.Slice(chunk.DataStart, chunk.Length).CopyTo(one[written..]);
            written += chunk.Length;
        }
        BinaryPrimitives.WriteUInt32BigEndian(one[written..], PngChecksums.Crc(one[4..written]));
        file[runEnd..].CopyTo(merged.AsSpan(runStart + one.Length));
        return merged;
    }

    /// <summary>
    /// From its first IDAT chunk on, Pillow reads no CRC of a PNG (it checks those of the chunks before, as PngChecksums
    /// does); ImageSharp checks the critical chunks' and refused a file whose image data's CRC is wrong ("CRC Error. PNG
    /// IDAT chunk is corrupt!"), though the data itself inflates to the trainer's very rows. Those CRCs are written anew;
    /// the data is judged as it is (PngRows), as Pillow judges it.
    /// </summary>
    /// <returns>The file itself, or, when a critical chunk from the first IDAT on has a wrong CRC, a copy with it mended.</returns>
    public static ReadOnlyMemory<byte> WithImageDataChecksumsMended(ReadOnlyMemory<byte> bytes)
    {
        var file = bytes.Span;
        if (!PngChunks.IsPng(file)) return bytes;
        byte[]? mended = null;
        var imageDataSeen = false;
        foreach (var chunk in new PngChunks(file))
        {
            imageDataSeen |= chunk.Is("IDAT"u8);
            if (!imageDataSeen || !chunk.IsCritical) continue;
            var crc = chunk.ComputedCrc(file);
            if (crc == chunk.StoredCrc(file)) continue;
            mended ??= file.ToArray();
            BinaryPrimitives.WriteUInt32BigEndian(mended.AsSpan(chunk.CrcAt), crc);
        }
        return mended ?? bytes;
    }

    /// <summary>
    /// Pillow reads the chunks after the image data too, and a transparency chunk (tRNS) there makes its colours
    /// transparent as one before would (the last one read counts); ImageSharp reads none after the image data, so such a
    /// file came out opaque. The last tRNS, when it lies after the last IDAT, is moved before the first, the only one (its
    /// CRC written anew: Pillow reads none after the image data), where the checks of the chunks before the image data
    /// judge it as Pillow does. The file is left as it is, for those checks to judge, when a tRNS before the image data
    /// that the move would drop is unsound (its CRC, or a value Pillow cannot use: Pillow reads every chunk before the
    /// image data), when a tRNS lies between two IDAT chunks (Pillow's image data ends there), and when the file has no
    /// IEND (a cut file: the completeness check says so, at the file's own offsets).
    /// </summary>
    /// <returns>The file itself, or, when its last tRNS lies after its image data, a copy with that tRNS alone before the image data.</returns>
    public static ReadOnlyMemory<byte> WithTransparencyBeforeImageData(ReadOnlyMemory<byte> bytes)
    {
        var file = bytes.Span;
        if (!PngChunks.IsPng(file)) return bytes;
        var chunks = new List<(int Start, int End, bool Transparency)>();
        int firstImageData = -1, lastImageData = -1, lastTransparency = -1;
        var ended = false;
        var fields = PngChunkFields.Of(file);
        foreach (var chunk in new PngChunks(file))
        {
            if (chunk.Is("IEND"u8))
            {
                ended = true;
                break;
            }
            var transparency = chunk.Is("tRNS"u8);
            if (chunk.Is("IDAT"u8))
            {
                if (firstImageData < 0) firstImageData = chunks.Count;
                lastImageData = chunks.Count;
            }
            if (transparency)
            {
                // One before the image data that the move would drop is judged here, as the checks would judge it.
                if (firstImageData < 0 && (chunk.ComputedCrc(file) != chunk.StoredCrc(file) || fields?.Judge(chunk.Type, file.Slice(chunk.DataStart, chunk.Length)) is not null))
                {
                    return bytes;
                }
                lastTransparency = chunks.Count;
            }
            chunks.Add((chunk.Start, chunk.End, transparency));
        }
        if (!ended || firstImageData < 0 || lastTransparency < lastImageData) return bytes;

        var moved = chunks[lastTransparency];
        var copy = new byte[file.Length - chunks.Where(c => c.Transparency).Sum(c => c.End - c.Start) + (moved.End - moved.Start)];
        var written = PngChunks.Signature.Length;
        file[..written].CopyTo(copy);
        for (var i = 0; i < chunks.Count; i++)
        {
            if (i == firstImageData)
            {
                file[moved.Start..moved.End].CopyTo(copy.AsSpan(written));
                BinaryPrimitives.WriteUInt32BigEndian(copy.AsSpan(written + moved.End - moved.Start - 4), PngChecksums.Crc(file[(moved.Start + 4)..(moved.End - 4)]));
                written += moved.End - moved.Start;
            }
            if (chunks[i].Transparency) continue;
            file[chunks[i].Start..chunks[i].End].CopyTo(copy.AsSpan(written));
            written += chunks[i].End - chunks[i].Start;
        }
        file[chunks[^1].End..].CopyTo(copy.AsSpan(written));   // IEND and what follows, as they are
        return copy;
    }
}
