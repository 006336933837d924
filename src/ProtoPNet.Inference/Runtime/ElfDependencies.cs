using System.Buffers.Binary;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace ProtoPNet.Inference.Runtime;

/// <summary>
/// The libraries a Linux shared library names as its dependencies (DT_NEEDED in its dynamic section, what ldd follows),
/// read from the file without loading it: loading ONNX Runtime's CUDA provider library outside ONNX Runtime runs its
/// initialisers before ONNX Runtime has handed it its host, which crashes the process.
/// </summary>
internal static class ElfDependencies
{
    private const uint LoadSegment = 1, DynamicSegment = 2;
    private const long Needed = 1, StringTable = 5;
    private const int ProgramHeaderSize = 56;
    // A few hundred entries of 16 bytes in any real library; more is a damaged file, not a reason to allocate.
    private const ulong MaxDynamicSize = 1 << 20;

    /// <summary>The dependencies' names in the file's order; throws <see cref="InvalidDataException"/> when the file is
    /// not a 64-bit little-endian ELF file with a dynamic section.</summary>
    public static IReadOnlyList<string> Read(string path)
    {
        using var file = File.OpenHandle(path);
        var header = ReadAt(file, 0, 64);
        if (!header.AsSpan(0, 4).SequenceEqual("\u007FELF"u8) || header[4] != 2 || header[5] != 1)
            throw new InvalidDataException($"{path} is not a 64-bit little-endian ELF file");
        var programHeaders = (long)BinaryPrimitives.ReadUInt64LittleEndian(header.AsSpan(0x20));
        var entrySize = BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(0x36));
        var count = BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(0x38));
        if (entrySize < ProgramHeaderSize) throw new InvalidDataException($"{path}: program headers of {entrySize} bytes, not {ProgramHeaderSize}");
        var table = ReadAt(file, programHeaders, entrySize * count);

        var loads = new List<(ulong Address, ulong Size, long Offset)>();
        (long Offset, int Size)? dynamic = null;
        for (var i = 0; i < count; i++)
        {
            var entry = table.AsSpan(i * entrySize, entrySize);
            var type = BinaryPrimitives.ReadUInt32LittleEndian(entry);
            var offset = (long)BinaryPrimitives.ReadUInt64LittleEndian(entry[8..]);
            var address = BinaryPrimitives.ReadUInt64LittleEndian(entry[16..]);
            var size = BinaryPrimitives.ReadUInt64LittleEndian(entry[32..]);
            if (type == LoadSegment) loads.Add((address, size, offset));
            if (type == DynamicSegment)
            {
                if (size > MaxDynamicSize) throw new InvalidDataException($"{path}: a dynamic section of {size} bytes");
                dynamic = (offset, (int)size);
            }
        }
        if (dynamic is not { } section) throw new InvalidDataException($"{path} has no dynamic section");

        var entries = ReadAt(file, section.Offset, section.Size);
        var neededNames = new List<long>();
        ulong? stringsAddress = null;
        for (var at = 0; at + 16 <= entries.Length; at += 16)
        {
            var tag = BinaryPrimitives.ReadInt64LittleEndian(entries.AsSpan(at));
            var value = BinaryPrimitives.ReadUInt64LittleEndian(entries.AsSpan(at + 8));
            if (tag == 0) break;
            if (tag == Needed) neededNames.Add((long)value);
            if (tag == StringTable) stringsAddress = value;
        }
        if (neededNames.Count == 0) return [];
        // The string table is given as a memory address: the segment loaded there says where it lies in the file.
        var segment = loads.FirstOrDefault(l => stringsAddress >= l.Address && stringsAddress < l.Address + l.Size);
        if (stringsAddress is not { } strings || segment.Size == 0)
            throw new InvalidDataException($"{path}: the dynamic section's string table lies in no loaded segment");
        var stringsOffset = (long)(strings - segment.Address) + segment.Offset;
        return neededNames.Select(name => ReadName(file, stringsOffset + name)).ToArray();
    }

    private static string ReadName(SafeFileHandle file, long offset)
    {
        var bytes = new byte[256];
        bytes = bytes[..RandomAccess.Read(file, bytes, offset)];
        var end = Array.IndexOf(bytes, (byte)0);
        return Encoding.UTF8.GetString(bytes, 0, end < 0 ? bytes.Length : end);
    }

    private static byte[] ReadAt(SafeFileHandle file, long offset, int length)
    {
        var buffer = new byte[length];
        if (offset < 0 || RandomAccess.Read(file, buffer, offset) != length)
            throw new InvalidDataException($"the file ends before the {length} bytes its headers place at {offset}");
        return buffer;
    }
}
