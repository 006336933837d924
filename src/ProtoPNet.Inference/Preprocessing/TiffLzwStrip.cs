namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// An LZW strip of a TIFF as libtiff 4.5 (the decoder under the trainer's Pillow) decodes it. libtiff refuses a strip
/// that does not begin with a clear code, that uses a code its table does not hold yet, that ends (an end code, or no
/// more bits) before its rows are there, or that goes on past a full table without a clear code; ImageSharp painted
/// what such a strip lacks black, or decoded codes libtiff refuses. libtiff also reads strips ImageSharp refuses: it
/// stops as soon as the rows are there, in the middle of a string if need be, passes over clear codes in a row, needs
/// no end code, and fills a table of 5,119 entries where ImageSharp's ends at 4,096.
/// So a strip is judged here (following only its strings' lengths: one pass over its codes, no pixel written), and a
/// sound strip that ImageSharp would misread is decoded as libtiff decodes it and written anew (<see cref="Encode"/>).
/// </summary>
internal static class TiffLzwStrip
{
    private const int Clear = 256, EndOfInformation = 257, FirstFree = 258;
    private const int MinBits = 9, MaxBits = 12;

    /// <summary>libtiff's table has 1,023 entries beyond the 4,096 that 12-bit codes reach, for old files; past them, only a clear code or the end may follow.</summary>
    private const int TableSize = (1 << MaxBits) - 1 + 1024;

    /// <summary>ImageSharp's table ends at the 4,096 entries 12-bit codes reach: it throws on a strip that adds more without a clear code.</summary>
    private const int ImageSharpTableSize = 1 << MaxBits;

    /// <summary>What libtiff makes of a strip: what stops it before the rows (part of a sentence), or null; and whether ImageSharp would read the strip otherwise.</summary>
    public readonly record struct Verdict(string? Damage, bool Irregular);

    /// <summary>
    /// Whether <paramref name="data"/> is written with the bit order of libtiff before 1991 (a first byte of 0 and an
    /// odd second), which libtiff decodes otherwise when the first strip is so; this check does not judge those files.
    /// </summary>
    public static bool IsOldStyle(ReadOnlySpan<byte> data) => data.Length >= 2 && data[0] == 0 && (data[1] & 1) != 0;

    /// <summary>How libtiff decodes the <paramref name="needed"/> bytes of a strip's rows from <paramref name="data"/>.</summary>
    public static Verdict Judge(ReadOnlySpan<byte> data, ulong needed)
    {
        Span<ushort> lengths = stackalloc ushort[TableSize];
        return Walk(data, needed, lengths, default, default, default, Span<byte>.Empty);
    }

    /// <summary>The rows of a strip <see cref="Judge"/> found sound, as libtiff decodes them (its bytes before any predictor).</summary>
    public static byte[] Decode(ReadOnlySpan<byte> data, int needed)
    {
        var rows = new byte[needed];
        var verdict = Walk(data, (ulong)needed, new ushort[TableSize], new ushort[TableSize], new byte[TableSize], new byte[TableSize], rows);
        if (verdict.Damage is not null) throw new InvalidOperationException($"Only a sound strip is decoded; this one {verdict.Damage}.");
        return rows;
    }

    /// <summary>
    /// Follows a strip's codes as libtiff's LZWDecode does, until the rows are there or it stops; with a table of
    /// prefixes and bytes, it writes the rows into <paramref name="rows"/> too (empty: only judged).
    /// </summary>
    private static Verdict Walk(ReadOnlySpan<byte> data, ulong needed, Span<ushort> lengths, Span<ushort> prefixes, Span<byte> firstBytes, Span<byte> lastBytes, Span<byte> rows)
    {
        if (needed == 0) return new(null, false);
        var decoding = !rows.IsEmpty;
        for (var literal = 0; literal < Clear; literal++)
        {
            lengths[literal] = 1;
            if (decoding) firstBytes[literal] = lastBytes[literal] = (byte)literal;
        }
        var codes = new CodeReader(data);
        var irregular = false;
        var free = -1;   // no entry may be added before the first clear code
        var old = 0;
        var written = 0UL;
        while (true)
        {
            if (codes.Next() is not { } code) return new(RunsOut(data, needed - written), irregular);
            if (code == EndOfInformation) return new(EndsEarly(needed - written), irregular);
            if (code == Clear)
            {
                free = FirstFree;
                codes.Width = MinBits;
                do
                {
                    if (codes.Next() is not { } first) return new(RunsOut(data, needed - written), irregular);
                    code = first;
                    irregular |= code == Clear;   // ImageSharp refuses a second clear code in a row
                }
                while (code == Clear);
                if (code == EndOfInformation) return new(EndsEarly(needed - written), irregular);
                if (code > EndOfInformation) return new($"follows a clear code with code {code}, which its table does not hold yet", irregular);
                old = code;
                if (decoding) rows[(int)written] = (byte)code;
                if (++written == needed) return new(null, irregular || !codes.EndsAfterRows());
                continue;
            }
            if (free < 0) return new(codes.SawClear ? $"uses code {code} after its table is full, without a clear code" : $"does not begin with a clear code (its first code is {code})", irregular);
            // A code is either in the table, or the very entry it is about to add (the string before it and its own first byte).
            if (code > free) return new($"uses code {code}, which its table does not hold yet", irregular);
            lengths[free] = (ushort)(lengths[old] + 1);
            irregular |= free >= ImageSharpTableSize;
            if (decoding)
            {
                prefixes[free] = (ushort)old;
                firstBytes[free] = firstBytes[old];
                lastBytes[free] = code == free ? firstBytes[old] : firstBytes[code];
            }
            if (++free > MaxCodeAt(codes.Width))
            {
                codes.Width = Math.Min(codes.Width + 1, MaxBits);
                if (free >= TableSize) free = -1;
            }
            old = code;
            // A string longer than what the rows still lack fills them (libtiff keeps the rest for a next call; ImageSharp refuses it).
            var length = Math.Min(lengths[code], needed - written);
            if (decoding) WriteString(code, lengths[code], rows.Slice((int)written, (int)length), prefixes, lastBytes);
            written += length;
            if (written == needed) return new(null, irregular || length < lengths[code] || !codes.EndsAfterRows());
        }
    }

    /// <summary>The first <c>destination.Length</c> bytes of the string of <paramref name="code"/>, whose entries hold its last byte and the code before it.</summary>
    private static void WriteString(int code, int length, Span<byte> destination, Span<ushort> prefixes, Span<byte> lastBytes)
    {
        for (var skip = length - destination.Length; skip > 0; skip--) code = prefixes[code];
        for (var at = destination.Length - 1; at >= 0; at--)
        {
            destination[at] = lastBytes[code];
            code = prefixes[code];
        }
    }

    /// <summary>
    /// Rows as an LZW strip every decoder reads alike: a clear code first, an end code right after the rows, codes
    /// widened one entry early and a clear code when the table is full (as libtiff writes them).
    /// </summary>
    public static byte[] Encode(ReadOnlySpan<byte> rows)
    {
        var writer = new CodeWriter(rows.Length);
        var table = new StringTable();
        var free = FirstFree;
        writer.Write(Clear);
        if (rows.IsEmpty)
        {
            writer.Write(EndOfInformation);
            return writer.ToArray();
        }
        int current = rows[0];
        foreach (var next in rows[1..])
        {
            if (table.Find(current, next) is var longer and >= 0)
            {
                current = longer;
                continue;
            }
            writer.Write(current);
            table.Add(current, next, free++);
            current = next;
            Grow(ref free, writer, table);
        }
        writer.Write(current);
        free++;
        Grow(ref free, writer, table);
        writer.Write(EndOfInformation);
        return writer.ToArray();
    }

    /// <summary>After an entry is added: codes a bit wider once the table needs them, or a clear code when it is full.</summary>
    private static void Grow(ref int free, CodeWriter writer, StringTable table)
    {
        if (free == (1 << MaxBits) - 2)
        {
            writer.Write(Clear);
            writer.Width = MinBits;
            table.Clear();
            free = FirstFree;
        }
        else if (free > (1 << writer.Width) - 1)
        {
            writer.Width++;
        }
    }

    /// <summary>
    /// The encoder's strings, a code and a byte to the longer string's code: open addressing in arrays of 8,192 slots (at
    /// most 3,836 strings between clear codes), emptied by starting a new generation rather than by clearing them.
    /// </summary>
    private sealed class StringTable
    {
        private const int Slots = 1 << 13;
        private readonly int[] _keys = new int[Slots];
        private readonly short[] _codes = new short[Slots];
        private readonly int[] _generations = new int[Slots];
        private int _generation = 1;

        public int Find(int prefix, int next)
        {
            var key = prefix << 8 | next;
            for (var slot = Hash(key); _generations[slot] == _generation; slot = (slot + 1) & (Slots - 1))
            {
                if (_keys[slot] == key) return _codes[slot];
            }
            return -1;
        }

        public void Add(int prefix, int next, int code)
        {
            var key = prefix << 8 | next;
            var slot = Hash(key);
            while (_generations[slot] == _generation) slot = (slot + 1) & (Slots - 1);
            (_keys[slot], _codes[slot], _generations[slot]) = (key, (short)code, _generation);
        }

        public void Clear() => _generation++;

        private static int Hash(int key) => (int)((uint)(key * -1640531535) >> 19);
    }

    /// <summary>The last entry added before codes grow a bit wider (libtiff widens them one entry early, as every TIFF writer does).</summary>
    private static int MaxCodeAt(int width) => (1 << width) - 2;

    private static string RunsOut(ReadOnlySpan<byte> data, ulong remaining) =>
        $"runs out of codes after its {data.Length} bytes, {remaining} bytes short of its rows, without an end code";

    private static string EndsEarly(ulong remaining) => $"ends (an end code) {remaining} bytes short of its rows";

    /// <summary>Codes of <see cref="Width"/> bits, most significant bit first, as long as the strip has bits for a whole code.</summary>
    private ref struct CodeReader(ReadOnlySpan<byte> data)
    {
        private readonly ReadOnlySpan<byte> _data = data;
        private int _position;
        private uint _bits;
        private int _bitCount;

        public int Width = MinBits;
        public bool SawClear;

        public int? Next()
        {
            while (_bitCount < Width)
            {
                if (_position == _data.Length) return null;
                _bits = _bits << 8 | _data[_position++];
                _bitCount += 8;
            }
            _bitCount -= Width;
            var code = (int)(_bits >> _bitCount) & ((1 << Width) - 1);
            if (code == Clear) SawClear = true;
            return code;
        }

        /// <summary>
        /// Whether, once the rows are there, an end code follows. ImageSharp decodes on until one: codes after the rows
        /// it decodes too, and from a strip without an end code it reads on into the bytes after it (a short last strip
        /// fills only part of its buffer), where it throws.
        /// </summary>
        public bool EndsAfterRows() => Next() is EndOfInformation;
    }

    /// <summary>Codes of a given width, most significant bit first, into a growing buffer.</summary>
    private sealed class CodeWriter(int rowBytes)
    {
        private readonly MemoryStream _bytes = new(rowBytes / 2 + 16);
        private uint _bits;
        private int _bitCount;

        public int Width = MinBits;

        public void Write(int code)
        {
            _bits = _bits << Width | (uint)code;
            _bitCount += Width;
            while (_bitCount >= 8)
            {
                _bitCount -= 8;
                _bytes.WriteByte((byte)(_bits >> _bitCount));
            }
        }

        public byte[] ToArray()
        {
            if (_bitCount > 0) _bytes.WriteByte((byte)(_bits << (8 - _bitCount)));
            return _bytes.ToArray();
        }
    }
}
