namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// Pillow (the trainer's decoder) reads an uncompressed strip's rows from its offset on, whatever its byte count says;
/// ImageSharp reads only as many bytes as the count gives and painted the rest of the strip black, so a file whose
/// writer counted short was classified as other pixels than the trainer's. Such a strip (found by <see
/// cref="TiffStripData"/>'s check, which refuses one whose rows run past the file's end) is given the count of its rows.
/// Likewise a lone compressed strip counted 0, which libtiff reads to the file's end ("Bogus StripByteCounts") and
/// ImageSharp refused ("Out of range when reading a strip"), is given the count of the bytes up to the end (PackBits,
/// which has no end code, of the bytes up to its rows' end, where libtiff stops). So is a PackBits strip counted past the
/// run that ends its rows (runs after them, or a count to the file's end): libtiff stops at its rows, ImageSharp decoded
/// every counted byte into a buffer of them and refused the file ("Destination is too short").
/// </summary>
public static class TiffStripCounts
{
    /// <summary>The file itself when it has no such strip; otherwise a copy with their counts written anew.</summary>
    internal static ReadOnlyMemory<byte> WithTheTrainersCounts(ReadOnlyMemory<byte> bytes, TiffStripRewrites found)
    {
        // Counts written as SHORTs hold at most 65535: a file that needs more is left as it is.
        if (found.NewCounts.Count == 0 || !found.ListsApart() || found.NewCounts.Any(strip => strip.Count > (ulong)TiffStripRewrites.MaxValue(found.Counts.Type)))
        {
            return bytes;
        }
        var copy = bytes.ToArray();
        foreach (var (index, count) in found.NewCounts)
        {
            TiffDirectory.WriteValue(copy.AsSpan(TiffStripRewrites.ValueAt(found.Counts, index)), found.Counts.Type, count, found.Directory.LittleEndian);
        }
        return copy;
    }
}
