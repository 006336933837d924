namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// A TIFF's sound strips that ImageSharp reads otherwise than libtiff (the trainer's decoder), written anew as libtiff
/// decodes them. LZW: libtiff stops as soon as a strip's rows are there, in the middle of a string if need be, passes
/// over clear codes in a row, fills a table of 5,119 entries and needs no end code; ImageSharp threw on each ("Index was
/// outside the bounds of the array", "Corrupted TIFF LZW"), so files the trainer reads were refused, and it decoded codes
/// after the rows that libtiff never reads. PackBits: libtiff cuts a run that reaches past a strip's rows at them, where
/// ImageSharp decoded it whole past its buffer of the rows ("Destination is too short"). Such a strip (found by <see
/// cref="TiffStripData"/>'s check, in the same pass) is decoded here to libtiff's very bytes and encoded again as every
/// decoder reads it (<see cref="TiffLzwStrip.Encode"/>, <see cref="TiffPackBits.CutAtItsRows"/>); the new strips go
/// after the file's end and the directory's strip offsets and byte counts point at them (the predictor, if any, still
/// applies to the same bytes). Run once a file passed the size limits and the corruption checks: a strip is decoded to
/// no more than its rows.
/// </summary>
public static class TiffStripsWrittenAnew
{
    /// <summary>The rows of a strip decoded whole at most (a strip of larger rows, which no common writer makes, is left to the decoder as it is).</summary>
    private const ulong MaxStripBytes = 64 << 20;

    /// <summary>The file itself when it has no such strip; otherwise a copy with them written anew.</summary>
    internal static ReadOnlyMemory<byte> WithStripsWrittenAnew(ReadOnlyMemory<byte> bytes, TiffStripRewrites found)
    {
        if (found.WrittenAnew.Count == 0 || found.WrittenAnew.Any(strip => strip.Needed > MaxStripBytes) || !found.ListsApart()) return bytes;
        var encoded = found.WrittenAnew.Select(strip => Encode(bytes.Span.Slice(strip.Start, strip.Length), strip)).ToArray();
        var (offsets, counts) = (found.Offsets, found.Counts);
        var at = (bytes.Length + 1L) & ~1L;   // strips begin on a word boundary, as writers place them
        var newOffsets = new long[encoded.Length];
        for (var i = 0; i < encoded.Length; i++)
        {
            newOffsets[i] = at;
            at += (encoded[i].Length + 1L) & ~1L;
        }
        // Offsets and counts written as SHORTs hold at most 65535: a file that needs more is left as it is.
        if (at > int.MaxValue || at - 1 > TiffStripRewrites.MaxValue(offsets.Type) || encoded.Any(strip => strip.Length > TiffStripRewrites.MaxValue(counts.Type))) return bytes;

        var copy = new byte[at];
        bytes.Span.CopyTo(copy);
        var littleEndian = found.Directory.LittleEndian;
        for (var i = 0; i < encoded.Length; i++)
        {
            var strip = found.WrittenAnew[i];
            encoded[i].CopyTo(copy.AsSpan((int)newOffsets[i]));
            TiffDirectory.WriteValue(copy.AsSpan(TiffStripRewrites.ValueAt(offsets, strip.Index)), offsets.Type, (ulong)newOffsets[i], littleEndian);
            TiffDirectory.WriteValue(copy.AsSpan(TiffStripRewrites.ValueAt(counts, strip.Index)), counts.Type, (ulong)encoded[i].Length, littleEndian);
        }
        return copy;
    }

    private static byte[] Encode(ReadOnlySpan<byte> data, StripWrittenAnew strip) => strip.PackBits
        ? TiffPackBits.CutAtItsRows(data, (int)strip.Needed)
        : TiffLzwStrip.Encode(TiffLzwStrip.Decode(data, (int)strip.Needed));
}
