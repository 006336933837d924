using System.Buffers.Binary;

namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// A GIF whose first frame reaches past its logical screen (a screen of 0x0, or smaller than the frame, as some
/// encoders write it): Pillow, the trainer's decoder, and browsers enlarge the image to hold the frame, while ImageSharp
/// refused the file ("its fields contradict each other"). The screen is enlarged in a copy, before the header is read,
/// so that the image is judged and decoded at Pillow's size. <see cref="DeclaredSize"/> tells that size too, also where
/// it is beyond the 16 bits of the screen's fields.
/// </summary>
public static class GifScreen
{
    /// <summary>The file itself unless its first frame reaches past its screen; then a copy whose screen holds it (at most 65535 a side).</summary>
    public static ReadOnlyMemory<byte> WithFirstFrameInside(ReadOnlyMemory<byte> bytes)
    {
        if (Extent(bytes.Span) is not var (width, height)) return bytes;
        var file = bytes.Span;
        if (width == BinaryPrimitives.ReadUInt16LittleEndian(file[6..]) && height == BinaryPrimitives.ReadUInt16LittleEndian(file[8..])) return bytes;
        var enlarged = bytes.ToArray();
        BinaryPrimitives.WriteUInt16LittleEndian(enlarged.AsSpan(6), (ushort)Math.Min(width, ushort.MaxValue));
        BinaryPrimitives.WriteUInt16LittleEndian(enlarged.AsSpan(8), (ushort)Math.Min(height, ushort.MaxValue));
        return enlarged;
    }

    /// <summary>
    /// The image's size as Pillow opens it: the logical screen's, each side enlarged to where the first frame ends
    /// (its left or top plus its width or height) when that is further; null for no GIF or no first frame descriptor.
    /// </summary>
    public static (long Width, long Height)? Extent(ReadOnlySpan<byte> file)
    {
        if (GifBlocks.FirstImageDescriptor(file) is not { } descriptor || descriptor + 9 > file.Length) return null;
        return (Math.Max(Field(file, 6), Field(file, descriptor + 1) + Field(file, descriptor + 5)),
            Math.Max(Field(file, 8), Field(file, descriptor + 3) + Field(file, descriptor + 7)));
    }

    private static long Field(ReadOnlySpan<byte> file, int at) => BinaryPrimitives.ReadUInt16LittleEndian(file[at..]);
}
