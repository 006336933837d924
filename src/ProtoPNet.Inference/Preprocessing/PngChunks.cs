using System.Buffers.Binary;

namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// A PNG's chunks after its signature, in order: the one walk every check and rewrite of a PNG's chunks takes. Each
/// chunk is its 4-byte length, 4-byte type, data and 4-byte CRC; the walk ends at the first chunk that does not lie
/// whole in the file (the completeness check judges a cut file) and takes no byte past it.
/// </summary>
internal readonly ref struct PngChunks(ReadOnlySpan<byte> file)
{
    /// <summary>The eight bytes every PNG begins with.</summary>
    public static ReadOnlySpan<byte> Signature => [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    private readonly ReadOnlySpan<byte> _file = file;

    /// <summary>Whether the file begins with the PNG signature.</summary>
    public static bool IsPng(ReadOnlySpan<byte> file) => file.StartsWith(Signature);

    public Enumerator GetEnumerator() => new(_file);

    public ref struct Enumerator(ReadOnlySpan<byte> file)
    {
        private readonly ReadOnlySpan<byte> _file = file;
        private long _next = Signature.Length;

        public PngChunk Current { get; private set; }

        public bool MoveNext()
        {
            if (_next + 12 > _file.Length) return false;
            var length = BinaryPrimitives.ReadUInt32BigEndian(_file[(int)_next..]);
            if (_next + 12 + length > _file.Length) return false;
            Current = new PngChunk((int)_next, (int)length, _file.Slice((int)_next + 4, 4));
            _next += 12 + length;
            return true;
        }
    }
}

/// <summary>One whole chunk: where it begins (its length field), how many bytes of data it holds, and its type.</summary>
internal readonly ref struct PngChunk(int start, int length, ReadOnlySpan<byte> type)
{
    public int Start { get; } = start;
    public int Length { get; } = length;
    public ReadOnlySpan<byte> Type { get; } = type;

    /// <summary>Where its data begins.</summary>
    public int DataStart => Start + 8;

    /// <summary>Where its CRC lies.</summary>
    public int CrcAt => Start + 8 + Length;

    /// <summary>Where the next chunk begins.</summary>
    public int End => Start + 12 + Length;

    public bool Is(ReadOnlySpan<byte> type) => Type.SequenceEqual(type);

    /// <summary>Whether a decoder must understand it: a type whose first letter is upper case (IHDR, PLTE, IDAT, IEND).</summary>
    public bool IsCritical => (Type[0] & 0x20) == 0;

    /// <summary>The CRC of its type and data, as it should be.</summary>
    public uint ComputedCrc(ReadOnlySpan<byte> file) => PngChecksums.Crc(file.Slice(Start + 4, Length + 4));

    /// <summary>The CRC it carries.</summary>
    public uint StoredCrc(ReadOnlySpan<byte> file) => BinaryPrimitives.ReadUInt32BigEndian(file[CrcAt..]);
}
