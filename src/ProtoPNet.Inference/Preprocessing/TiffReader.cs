using System.Buffers.Binary;

namespace ProtoPNet.Inference.Preprocessing;

/// <summary>Numbers of a TIFF file in its byte order (II: little-endian, MM: big-endian).</summary>
internal readonly ref struct TiffReader(ReadOnlySpan<byte> file, bool littleEndian)
{
    private readonly ReadOnlySpan<byte> _file = file;

    public int Length => _file.Length;

    public byte U8(long at) => _file[(int)at];
    public ushort U16(long at) => littleEndian ? BinaryPrimitives.ReadUInt16LittleEndian(_file[(int)at..]) : BinaryPrimitives.ReadUInt16BigEndian(_file[(int)at..]);
    public uint U32(long at) => littleEndian ? BinaryPrimitives.ReadUInt32LittleEndian(_file[(int)at..]) : BinaryPrimitives.ReadUInt32BigEndian(_file[(int)at..]);
    public ulong U64(long at) => littleEndian ? BinaryPrimitives.ReadUInt64LittleEndian(_file[(int)at..]) : BinaryPrimitives.ReadUInt64BigEndian(_file[(int)at..]);

    /// <summary>Value <paramref name="index"/> of an offset or byte count array: SHORT, LONG or LONG8 (the caller checked it lies within the file).</summary>
    public ulong Value(ulong at, ulong index, ushort type) => type switch
    {
        3 => U16((long)(at + index * 2)),
        16 => U64((long)(at + index * 8)),
        4 => U32((long)(at + index * 4)),
        _ => 0, // not a type an offset or a count can have: the decoder refuses it
    };
}
