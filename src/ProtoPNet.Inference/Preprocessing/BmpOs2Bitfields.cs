using System.Buffers.Binary;

namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// A BMP with OS/2 2.x's 64-byte info header and compression 3, which OS/2 means as Huffman 1D: Pillow (the trainer's
/// decoder) reads a 64-byte header as Windows' 40-byte one with masks, so compression 3 is BITFIELDS to it, its red,
/// green, blue and alpha masks taken from the OS/2 fields after the first 40 bytes (where a version 4 header has them),
/// and a 16-, 24- or 32-bit picture with masks of a layout it reads is read (all 0 at 32 bits: blue, green, red and
/// alpha). ImageSharp took it for Huffman and refused it. The header is written as a version 4 one of 108 bytes, its
/// first 56 bytes kept (the masks among them) and the colour-space fields after them 0, the pixels moved along with the
/// rest of the file; ImageSharp then reads the masks where Pillow reads them, and the checks and Pillow's own readings
/// that follow (<see cref="BmpBgrBitfields"/>, <see cref="BmpPixelData"/>, <see cref="BmpPixelsAsPillow"/>) treat it as
/// any version 4 BMP. Measured against Debian's Pillow 9.4.
/// </summary>
public static class BmpOs2Bitfields
{
    private const int FileSizeAt = 2, PixelDataOffsetAt = 10, InfoHeaderAt = 14, BitCountAt = 28, CompressionAt = 30;
    private const uint Os2Header = 64, Version4Header = 108, Bitfields = 3;

    /// <summary>The bytes of the 64-byte header kept: Windows' 40 and the four masks after them.</summary>
    private const int KeptHeaderBytes = 56;

    private const int Added = (int)(Version4Header - Os2Header);

    /// <summary>The file itself when it is no such BMP; otherwise a copy with a version 4 header.</summary>
    public static ReadOnlyMemory<byte> WithVersion4Header(ReadOnlyMemory<byte> bytes)
    {
        var file = bytes.Span;
        var pixelsFrom = InfoHeaderAt + (int)Os2Header;
        if (file.Length < pixelsFrom || file[0] != 'B' || file[1] != 'M') return bytes;
        if (BinaryPrimitives.ReadUInt32LittleEndian(file[InfoHeaderAt..]) != Os2Header || BinaryPrimitives.ReadUInt32LittleEndian(file[CompressionAt..]) != Bitfields) return bytes;
        // Pillow refuses BITFIELDS at palette depths, as ImageSharp refuses Huffman: both refuse it as it is.
        if (BinaryPrimitives.ReadUInt16LittleEndian(file[BitCountAt..]) is not (16 or 24 or 32)) return bytes;
        // Pillow reads the pixels from where the file header says (right after the info header when it says 0); pixels
        // said to begin inside the header are left to the decoder as they are.
        var pixelDataOffset = BinaryPrimitives.ReadUInt32LittleEndian(file[PixelDataOffsetAt..]);
        if (pixelDataOffset != 0 && pixelDataOffset < pixelsFrom) return bytes;

        var copy = new byte[file.Length + Added];
        file[..(InfoHeaderAt + KeptHeaderBytes)].CopyTo(copy);
        file[pixelsFrom..].CopyTo(copy.AsSpan(pixelsFrom + Added));
        BinaryPrimitives.WriteUInt32LittleEndian(copy.AsSpan(InfoHeaderAt), Version4Header);
        BinaryPrimitives.WriteUInt32LittleEndian(copy.AsSpan(PixelDataOffsetAt), (pixelDataOffset == 0 ? (uint)pixelsFrom : pixelDataOffset) + Added);
        var fileSize = BinaryPrimitives.ReadUInt32LittleEndian(file[FileSizeAt..]);
        if (fileSize != 0) BinaryPrimitives.WriteUInt32LittleEndian(copy.AsSpan(FileSizeAt), fileSize + Added);
        return copy;
    }
}
