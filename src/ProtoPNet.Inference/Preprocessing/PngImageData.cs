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
        if (!file.StartsWith(PngText.Signature)) return bytes;
        byte[]? mended = null;
        var imageDataSeen = false;
        for (long position = PngText.Signature.Length; position + 12 <= file.Length;)
        {
            var length = BinaryPrimitives.ReadUInt32BigEndian(file[(int)position..]);
            var end = position + 12 + length;
            if (end > file.Length) break;   // truncated: the completeness check says so
            var type = file.Slice((int)position + 4, 4);
            imageDataSeen |= type.SequenceEqual("IDAT"u8);
            var critical = (type[0] & 0x20) == 0;   // an upper-case first letter
            if (imageDataSeen && critical)
            {
                var crc = PngChecksums.Crc(file.Slice((int)position + 4, (int)length + 4));
                if (BinaryPrimitives.ReadUInt32BigEndian(file[(int)(end - 4)..]) != crc)
                {
                    mended ??= file.ToArray();
                    BinaryPrimitives.WriteUInt32BigEndian(mended.AsSpan((int)(end - 4)), crc);
                }
            }
            position = end;
        }
        return mended ?? bytes;
    }

    /// <summary>
    /// Pillow reads the chunks after the image data too, and a transparency chunk (tRNS) there makes its colours
    /// transparent as one before would (the last one read counts); ImageSharp reads none after the image data, so such a
    /// file came out opaque. The last tRNS is moved before the first IDAT, the only one (its CRC written anew: Pillow reads
    /// none after the image data, and one before is judged), where the checks of the chunks before the image data judge it
    /// as Pillow does.
    /// </summary>
    /// <returns>The file itself, or, when a tRNS lies after its first IDAT, a copy with the last tRNS alone before it.</returns>
    public static ReadOnlyMemory<byte> WithTransparencyBeforeImageData(ReadOnlyMemory<byte> bytes)
    {
        var file = bytes.Span;
        if (!file.StartsWith(PngText.Signature)) return bytes;
        var chunks = new List<(int Start, int End, bool Transparency)>();
        int firstImageData = -1, lastTransparency = -1;
        var transparencyAfterImageData = false;
        for (long position = PngText.Signature.Length; position + 12 <= file.Length;)
        {
            var end = position + 12 + BinaryPrimitives.ReadUInt32BigEndian(file[(int)position..]);
            if (end > file.Length) return bytes;   // truncated: the completeness check says so
            var type = file.Slice((int)position + 4, 4);
            if (type.SequenceEqual("IEND"u8)) break;
            var transparency = type.SequenceEqual("tRNS"u8);
            if (type.SequenceEqual("IDAT"u8) && firstImageData < 0) firstImageData = chunks.Count;
            if (transparency)
            {
                lastTransparency = chunks.Count;
                transparencyAfterImageData |= firstImageData >= 0;
            }
            chunks.Add(((int)position, (int)end, transparency));
            position = end;
        }
        if (!transparencyAfterImageData) return bytes;

        var moved = chunks[lastTransparency];
        var copy = new byte[file.Length - chunks.Where(c => c.Transparency).Sum(c => c.End - c.Start) + (moved.End - moved.Start)];
        var written = PngText.Signature.Length;
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
        var rest = chunks.Count == 0 ? PngText.Signature.Length : chunks[^1].End;
        file[rest..].CopyTo(copy.AsSpan(written));
        return copy;
    }
}
