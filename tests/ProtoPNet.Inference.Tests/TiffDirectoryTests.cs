using System.Buffers.Binary;
using ProtoPNet.Inference.Preprocessing;

namespace ProtoPNet.Inference.Tests;

/// <summary>
/// The Orientation tag is read from an upload before anything checks that its directory is sound: every number in it
/// may point anywhere. A directory that does not lie within the file, or an orientation stored past its end, reads as
/// no orientation, never as a read outside the upload.
/// </summary>
public class TiffDirectoryTests
{
    /// <summary>A classic little-endian TIFF header pointing at one directory of one Orientation entry.</summary>
    private static byte[] Classic(ushort type, uint count, uint value, uint directoryAt = 8, ushort entries = 1, int length = 8 + 2 + 12 + 4)
    {
        var file = new byte[length];
        "II"u8.CopyTo(file);
        BinaryPrimitives.WriteUInt16LittleEndian(file.AsSpan(2), 42);
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(4), directoryAt);
        if ((long)directoryAt + 2 + 12 > length) return file;
        var at = (int)directoryAt;
        BinaryPrimitives.WriteUInt16LittleEndian(file.AsSpan(at), entries);
        BinaryPrimitives.WriteUInt16LittleEndian(file.AsSpan(at + 2), TiffDirectory.Orientation);
        BinaryPrimitives.WriteUInt16LittleEndian(file.AsSpan(at + 4), type);
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(at + 6), count);
        if (type == 3 && count == 1) BinaryPrimitives.WriteUInt16LittleEndian(file.AsSpan(at + 10), (ushort)value);
        else BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(at + 10), value);
        return file;
    }

    [Fact]
    public void ASoundDirectorysOrientationIsRead()
    {
        Assert.Equal(6, TiffDirectory.OrientationOf(Classic(type: 3, count: 1, value: 6)));
        Assert.Equal(8, TiffDirectory.OrientationOf(Classic(type: 4, count: 1, value: 8)));
        // Two LONGs do not fit in the entry: the entry holds their offset (here the file's end, 26, and 6 after it).
        var stored = Classic(type: 4, count: 2, value: 26, length: 26 + 8);
        BinaryPrimitives.WriteUInt32LittleEndian(stored.AsSpan(26), 6);
        Assert.Equal(6, TiffDirectory.OrientationOf(stored));
    }

    [Theory]
    [InlineData(3u, 1u, 0u)]            // out of range
    [InlineData(3u, 1u, 9u)]
    [InlineData(1u, 1u, 6u)]            // a BYTE: not a type Pillow reads it as either
    [InlineData(4u, 0u, 6u)]            // no values
    [InlineData(4u, 2u, 4000u)]         // two LONGs stored past the file's end
    [InlineData(4u, 2u, uint.MaxValue)]
    [InlineData(3u, 1_000_000_000u, 20u)]   // a count no file holds, its values at an offset within it
    public void AnOrientationThatCannotBeReadIsNone(uint type, uint count, uint value) =>
        Assert.Equal(1, TiffDirectory.OrientationOf(Classic((ushort)type, count, value)));

    [Fact]
    public void MissingBitsPerSampleAndPhotometricAreAddedInTheirPlacesAndNothingElseMoves()
    {
        var file = Classic(type: 3, count: 1, value: 6);   // one entry, Orientation: no BitsPerSample, no PhotometricInterpretation
        var mended = TiffDefaults.WithDefaults(file).ToArray();
        Assert.Equal(file.AsSpan(0, 4).ToArray(), mended[..4]);                  // the same byte order and version
        Assert.Equal(file[8..], mended[8..file.Length]);                          // the rest of the file where it was
        var directory = (int)BinaryPrimitives.ReadUInt32LittleEndian(mended.AsSpan(4));
        Assert.True(directory >= file.Length && directory % 2 == 0);
        Assert.Equal(3, BinaryPrimitives.ReadUInt16LittleEndian(mended.AsSpan(directory)));
        // In tag order: BitsPerSample 1 (the tag's default), PhotometricInterpretation 0 (WhiteIsZero, Pillow's default), Orientation.
        Assert.Equal(258, BinaryPrimitives.ReadUInt16LittleEndian(mended.AsSpan(directory + 2)));
        Assert.Equal(1, BinaryPrimitives.ReadUInt16LittleEndian(mended.AsSpan(directory + 2 + 8)));
        Assert.Equal(262, BinaryPrimitives.ReadUInt16LittleEndian(mended.AsSpan(directory + 14)));
        Assert.Equal(0, BinaryPrimitives.ReadUInt16LittleEndian(mended.AsSpan(directory + 14 + 8)));
        Assert.Equal(TiffDirectory.Orientation, BinaryPrimitives.ReadUInt16LittleEndian(mended.AsSpan(directory + 26)));
        Assert.Equal(6, TiffDirectory.OrientationOf(mended));
        // With the tag, or not a sound TIFF: the file as it is.
        Assert.Equal(mended.Length, TiffDefaults.WithDefaults(mended).Length);
        Assert.Equal(20, TiffDefaults.WithDefaults(file[..20]).Length);
        Assert.Equal(3, TiffDefaults.WithDefaults("II*"u8.ToArray()).Length);
    }

    [Fact]
    public void ADirectoryOutsideTheFileIsNone()
    {
        Assert.Equal(1, TiffDirectory.OrientationOf(Classic(type: 3, count: 1, value: 6, directoryAt: 4000)));
        Assert.Equal(1, TiffDirectory.OrientationOf(Classic(type: 3, count: 1, value: 6, directoryAt: uint.MaxValue)));
        Assert.Equal(1, TiffDirectory.OrientationOf(Classic(type: 3, count: 1, value: 6, entries: 60_000)));   // more entries than bytes
        Assert.Equal(1, TiffDirectory.OrientationOf(Classic(type: 3, count: 1, value: 6)[..20]));              // cut inside its entry
        Assert.Equal(1, TiffDirectory.OrientationOf("II*"u8.ToArray()));
        var big = new byte[16];   // BigTIFF whose directory offset is near 2^64
        "II"u8.CopyTo(big);
        BinaryPrimitives.WriteUInt16LittleEndian(big.AsSpan(2), 43);
        BinaryPrimitives.WriteUInt16LittleEndian(big.AsSpan(4), 8);
        BinaryPrimitives.WriteUInt64LittleEndian(big.AsSpan(8), ulong.MaxValue - 4);
        Assert.Equal(1, TiffDirectory.OrientationOf(big));
    }
}
