using System.Buffers.Binary;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Tiff;
using SixLabors.ImageSharp.Formats.Webp;

namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// Finds files whose data ends before the image does (an interrupted upload). ImageSharp fills what is missing with
/// grey or black and reports success for most formats, so each format's own structure is walked here: every length,
/// offset and end marker the file declares must lie within the bytes received. Bytes after the end of the image are
/// allowed. GIF pixel data is followed further, since a cut file closed again by a tool (a GIF trailer written after
/// whatever it had) is whole as blocks, and ImageSharp paints what it lacks blank: a GIF's first frame must give every
/// pixel (<see cref="GifPixelsMissing"/>); a PNG's rows are judged by <see cref="PngRows"/>. Only missing data is judged:
/// a file that is complete but corrupt is left to the decoder to refuse.
/// </summary>
public static class ImageCompleteness
{
    /// <summary>Why the file is cut short (one sentence), or null when every part the file declares is present.</summary>
    public static string? FindMissingData(ReadOnlySpan<byte> file, IImageFormat format) => FindMissingData(file, format, out _);

    /// <summary>As above; <paramref name="jpegScans"/> counts a JPEG's scans (start-of-scan segments), 0 for other formats.</summary>
    public static string? FindMissingData(ReadOnlySpan<byte> file, IImageFormat format, out int jpegScans)
    {
        jpegScans = 0;
        return format switch
        {
            PngFormat => Png(file),
            JpegFormat => Jpeg(file, out jpegScans),
            GifFormat => Gif(file),
            BmpFormat => Bmp(file),
            TiffFormat => Tiff(file),
            WebpFormat => Webp(file),
            _ => null,
        };
    }

    /// <summary>
    /// PNG: chunks (length, type, data, CRC) one after the other until IEND. Bytes that are no chunks (the first not
    /// IHDR, a type that is not four letters) are corrupt, not cut short: the decoder judges them.
    /// </summary>
    private static string? Png(ReadOnlySpan<byte> file)
    {
        long position = 8;
        while (true)
        {
            if (position + 8 > file.Length) return $"the PNG data ends after {file.Length} bytes, before its IEND chunk";
            var length = BinaryPrimitives.ReadUInt32BigEndian(file[(int)position..]);
            var typeBytes = file.Slice((int)position + 4, 4);
            if (!IsChunkType(typeBytes) || (position == 8 && !typeBytes.SequenceEqual("IHDR"u8))) return null;
            var type = System.Text.Encoding.ASCII.GetString(typeBytes);
            var end = position + 12 + length;
            if (end > file.Length) return $"the PNG {type} chunk at byte {position} needs {end - position} bytes; only {file.Length - position} remain";
            if (type == "IEND") return null;
            position = end;
        }
    }

    private static bool IsChunkType(ReadOnlySpan<byte> type)
    {
        foreach (var letter in type)
        {
            if (letter is not ((>= (byte)'A' and <= (byte)'Z') or (>= (byte)'a' and <= (byte)'z'))) return false;
        }
        return true;
    }

    /// <summary>
    /// JPEG: marker segments with their lengths; after each start-of-scan the entropy-coded data runs to the next marker
    /// that is not a restart marker or a stuffed 0xFF. The file must reach the end-of-image marker (FFD9), as libjpeg expects.
    /// </summary>
    private static string? Jpeg(ReadOnlySpan<byte> file, out int scans)
    {
        scans = 0;
        const string missingEnd = "the JPEG data ends after {0} bytes, before its end-of-image marker (FFD9)";
        var position = 2; // after SOI
        while (true)
        {
            // Decoders skip anything between segments up to the next 0xFF; fill bytes (repeated 0xFF) may precede a marker.
            var next = position < file.Length ? file[position..].IndexOf((byte)0xFF) : -1;
            if (next < 0) return string.Format(missingEnd, file.Length);
            position += next;
            while (position < file.Length && file[position] == 0xFF) position++;
            if (position >= file.Length) return string.Format(missingEnd, file.Length);
            var marker = file[position++];
            if (marker == 0xD9) return null;
            if (marker is 0xD8 or 0x01 or 0x00 or >= 0xD0 and <= 0xD7) continue; // markers without a length
            if (position + 2 > file.Length) return string.Format(missingEnd, file.Length);
            var length = BinaryPrimitives.ReadUInt16BigEndian(file[position..]);
            if (position + length > file.Length)
            {
                return $"the JPEG segment FF{marker:X2} at byte {position - 2} declares {length + 2} bytes; only {file.Length - position + 2} remain";
            }
            position += Math.Max((int)length, 2);
            if (marker != 0xDA) continue;
            scans++;
            // Entropy-coded data of the scan: 0xFF 0x00 is a stuffed byte, 0xFF 0xD0..D7 a restart marker.
            while (true)
            {
                var ff = file[position..].IndexOf((byte)0xFF);
                if (ff < 0) return $"the JPEG scan data ends after {file.Length} bytes, before the scan and the image are complete";
                position += ff;
                if (position + 1 >= file.Length) return $"the JPEG scan data ends after {file.Length} bytes, before the scan and the image are complete";
                var following = file[position + 1];
                if (following is 0x00 or >= 0xD0 and <= 0xD7) position += 2;
                else if (following == 0xFF) position += 1;
                else break;
            }
        }
    }

    /// <summary>GIF: header, colour tables, then extension and image blocks of sub-blocks up to the trailer (0x3B).</summary>
    private static string? Gif(ReadOnlySpan<byte> file)
    {
        const int screenDescriptorEnd = 13;
        if (file.Length < screenDescriptorEnd) return $"the GIF data ends after {file.Length} bytes, inside its header";
        long position = screenDescriptorEnd + GifBlocks.ColourTableBytes(file[10]);
        var frame = 0;
        while (true)
        {
            if (position >= file.Length) return $"the GIF data ends after {file.Length} bytes, before its trailer (0x3B)";
            switch (file[(int)position++])
            {
                case 0x3B:
                    return null;
                case 0x21: // extension: a label, then sub-blocks
                    position++;
                    break;
                case 0x2C: // image: descriptor, local colour table, LZW code size, then sub-blocks of LZW data
                    if (position + 9 >= file.Length) return $"the GIF data ends after {file.Length} bytes, inside the descriptor of frame {frame}";
                    position += 9 + GifBlocks.ColourTableBytes(file[(int)position + 8]) + 1;
                    frame++;
                    break;
                default:
                    return null; // not a block a GIF can hold: corrupt, which the decoder judges
            }
            // Sub-blocks: a size byte, that many bytes, until a size of 0.
            while (true)
            {
                if (position >= file.Length) return $"the GIF data ends after {file.Length} bytes, inside the data of block {frame}";
                var size = file[(int)position++];
                if (size == 0) break;
                position += size;
            }
        }
    }

    /// <summary>
    /// Why the GIF's first frame (what is classified) does not get every pixel from its LZW data, or null. Judged once
    /// the decoder took the file, so that a corrupt one is refused as corrupt.
    /// </summary>
    public static string? GifPixelsMissing(ReadOnlySpan<byte> file)
    {
        // The first frame, reached as Pillow reaches it (GifBlocks: extensions and stray bytes passed over).
        if (GifBlocks.FirstImageDescriptor(file) is not { } position || position + 10 >= file.Length) return null;
        long framePixels = (long)BinaryPrimitives.ReadUInt16LittleEndian(file[(position + 5)..]) * BinaryPrimitives.ReadUInt16LittleEndian(file[(position + 7)..]);
        var lzwStart = position + 10 + GifBlocks.ColourTableBytes(file[position + 9]);
        if (lzwStart >= file.Length) return null;
        var pixels = GifPixelsDecoded(file, lzwStart, framePixels);
        return pixels < framePixels ? $"its first frame's LZW data gives {pixels} of the {framePixels} pixels the frame declares" : null;
    }

    /// <summary>
    /// How many pixels a GIF frame's LZW data gives (at most <paramref name="wanted"/>): codes are read as a decoder reads
    /// them, counting the length of each code's string, until the end code, a code no decoder could know, or the data's end.
    /// <paramref name="start"/> is the frame's LZW minimum code size, followed by its sub-blocks.
    /// </summary>
    private static long GifPixelsDecoded(ReadOnlySpan<byte> file, int start, long wanted)
    {
        int minimumCodeSize = file[start];
        if (minimumCodeSize is < 1 or > 11) return wanted;   // not LZW data: corrupt, which GifBlocks refuses
        int clear = 1 << minimumCodeSize, end = clear + 1;
        Span<short> lengths = stackalloc short[4096];
        lengths[..clear].Fill(1);
        int codeSize = minimumCodeSize + 1, next = clear + 2, previous = -1;
        long pixels = 0;
        int blockPosition = start + 1, blockRemaining = 0, bits = 0, bitCount = 0;
        while (pixels < wanted)
        {
            while (bitCount < codeSize)
            {
                if (blockPosition >= file.Length) return pixels;
                if (blockRemaining == 0)
                {
                    blockRemaining = file[blockPosition++];
                    if (blockRemaining == 0 || blockPosition >= file.Length) return pixels;   // the data ends
                }
                bits |= file[blockPosition++] << bitCount;
                bitCount += 8;
                blockRemaining--;
            }
            var code = bits & ((1 << codeSize) - 1);
            bits >>= codeSize;
            bitCount -= codeSize;
            if (code == clear)
            {
                (codeSize, next, previous) = (minimumCodeSize + 1, clear + 2, -1);
                continue;
            }
            if (code == end) return pixels;
            if (previous < 0)
            {
                if (code >= clear) return pixels;   // after a clear only a literal can come
                pixels++;
                previous = code;
                continue;
            }
            if (code > next || (code == next && next >= 4096)) return pixels;   // a code no decoder knows yet
            pixels += code < next ? lengths[code] : lengths[previous] + 1;
            if (next < 4096)
            {
                lengths[next] = (short)Math.Min(lengths[previous] + 1, short.MaxValue);
                next++;
                if (next == 1 << codeSize && codeSize < 12) codeSize++;
            }
            previous = code;
        }
        return pixels;
    }

    /// <summary>BMP: uncompressed pixel rows (4-byte aligned) from the pixel offset; compressed data by its declared size.</summary>
    private static string? Bmp(ReadOnlySpan<byte> file)
    {
        if (file.Length < 18) return $"the BMP data ends after {file.Length} bytes, inside its header";
        var pixelOffset = BinaryPrimitives.ReadUInt32LittleEndian(file[10..]);
        var headerSize = BinaryPrimitives.ReadUInt32LittleEndian(file[14..]);
        if (!DeclaredSize.IsBmpInfoHeaderSize(headerSize)) return null;   // no such header: corrupt, which the decoder judges
        if (14L + headerSize > file.Length) return $"the BMP data ends after {file.Length} bytes, inside its {headerSize}-byte info header";
        long width, height;
        int bitsPerPixel;
        uint compression = 0, imageSize = 0;
        if (headerSize == 12)
        {
            // OS/2 1.x core header: 16-bit sizes, never compressed.
            width = BinaryPrimitives.ReadUInt16LittleEndian(file[18..]);
            height = BinaryPrimitives.ReadInt16LittleEndian(file[20..]);
            bitsPerPixel = BinaryPrimitives.ReadUInt16LittleEndian(file[24..]);
        }
        else if (headerSize >= 16)
        {
            width = BinaryPrimitives.ReadInt32LittleEndian(file[18..]);
            height = BinaryPrimitives.ReadInt32LittleEndian(file[22..]);
            bitsPerPixel = BinaryPrimitives.ReadUInt16LittleEndian(file[28..]);
            if (headerSize >= 20) compression = BinaryPrimitives.ReadUInt32LittleEndian(file[30..]);
            if (headerSize >= 24) imageSize = BinaryPrimitives.ReadUInt32LittleEndian(file[34..]);
        }
        else
        {
            return null; // no such header: corrupt, which the decoder judges
        }

        // 0 = BI_RGB, 3 = BI_BITFIELDS, 6 = BI_ALPHABITFIELDS in a Windows header: plain rows of pixels.
        var uncompressed = compression == 0 || (headerSize is not (16 or 64) && compression is 3 or 6);
        Int128 needed; // wide enough for any header's width x height x bits
        if (uncompressed)
        {
            var rowBytes = ((Int128)Math.Abs(width) * bitsPerPixel + 31) / 32 * 4;
            needed = rowBytes * Math.Abs(height);
        }
        else
        {
            // Run-length and other compressed data: the size the header declares, or else the file size it declares.
            needed = imageSize;
            if (needed == 0)
            {
                var declaredFileSize = BinaryPrimitives.ReadUInt32LittleEndian(file[2..]);
                return declaredFileSize > file.Length
                    ? $"the BMP header declares {declaredFileSize} bytes; the file has only {file.Length}"
                    : null;
            }
        }
        return pixelOffset + needed > file.Length
            ? $"the BMP pixel data needs {needed} bytes from byte {pixelOffset}; only {Math.Max(0, file.Length - (long)pixelOffset)} remain"
            : null;
    }

    /// <summary>
    /// TIFF (and BigTIFF): every image file directory in the chain (the first alone, once <see cref="TiffLaterImages"/>
    /// has cut the chain after it), every value stored outside its entry, and every strip or tile (offset + byte count)
    /// must lie within the file.
    /// </summary>
    private static string? Tiff(ReadOnlySpan<byte> file)
    {
        if (file.Length < 8) return $"the TIFF data ends after {file.Length} bytes, inside its header";
        var littleEndian = file[0] == (byte)'I';
        var reader = new TiffReader(file, littleEndian);
        var big = reader.U16(2) == 43;
        if (big && file.Length < 16) return $"the TIFF data ends after {file.Length} bytes, inside its header";
        var entrySize = big ? 20 : 12;
        var countSize = big ? 8 : 2;
        var pointerSize = big ? 8 : 4;
        var directory = big ? reader.U64(8) : reader.U32(4);
        var visited = new HashSet<ulong>();
        for (var index = 0; directory != 0 && visited.Add(directory) && visited.Count <= 1024; index++)
        {
            if (!TiffDirectory.Within(directory, (ulong)countSize, file.Length))
            {
                return $"the TIFF data ends after {file.Length} bytes, before image directory {index} at byte {directory}";
            }
            var entries = big ? reader.U64((long)directory) : reader.U16((long)directory);
            var entriesStart = directory + (ulong)countSize;
            var directoryEnd = entriesStart + entries * (ulong)entrySize + (ulong)pointerSize;
            if (entries > 0xFFFF || directoryEnd > (ulong)file.Length)
            {
                return $"the TIFF data ends after {file.Length} bytes, inside image directory {index} at byte {directory}";
            }

            (ulong At, ulong Count, ushort Type) offsets = default, byteCounts = default;
            for (ulong e = 0; e < entries; e++)
            {
                var entry = (long)(entriesStart + e * (ulong)entrySize);
                var tag = reader.U16(entry);
                var type = reader.U16(entry + 2);
                var count = big ? reader.U64(entry + 4) : reader.U32(entry + 4);
                var valueField = entry + (big ? 12 : 8);
                var typeSize = TiffTypeSize(type);
                if (typeSize == 0) continue; // an unknown type: the decoder skips it
                if (count > (ulong)file.Length) return $"the TIFF tag {tag} declares {count} values; the file has only {file.Length} bytes";
                var valueBytes = count * typeSize;
                var valueOffset = valueBytes <= (ulong)pointerSize ? (ulong)valueField : big ? reader.U64(valueField) : reader.U32(valueField);
                if (!TiffDirectory.Within(valueOffset, valueBytes, file.Length))
                {
                    return $"the TIFF tag {tag} needs {valueBytes} bytes at byte {valueOffset}; the file ends after {file.Length}";
                }
                if (tag is 273 or 324) offsets = (valueOffset, count, type);          // StripOffsets, TileOffsets
                else if (tag is 279 or 325) byteCounts = (valueOffset, count, type);  // StripByteCounts, TileByteCounts
            }
            for (ulong i = 0; i < Math.Min(offsets.Count, byteCounts.Count); i++)
            {
                var start = reader.Value(offsets.At, i, offsets.Type);
                var length = reader.Value(byteCounts.At, i, byteCounts.Type);
                if (!TiffDirectory.Within(start, length, file.Length))
                {
                    return $"the TIFF image {index} strip or tile {i} needs {length} bytes at byte {start}; the file ends after {file.Length}";
                }
            }
            var nextField = (long)directoryEnd - pointerSize;
            directory = big ? reader.U64(nextField) : reader.U32(nextField);
        }
        return null;
    }

    private static ulong TiffTypeSize(ushort type) => type switch
    {
        1 or 2 or 6 or 7 => 1,      // BYTE, ASCII, SBYTE, UNDEFINED
        3 or 8 => 2,                // SHORT, SSHORT
        4 or 9 or 11 or 13 => 4,    // LONG, SLONG, FLOAT, IFD
        5 or 10 or 12 or 16 or 17 or 18 => 8, // RATIONAL, SRATIONAL, DOUBLE, LONG8, SLONG8, IFD8
        _ => 0,
    };

    /// <summary>A WebP chunk's four-character code as written (VP8, ALPH), or its bytes in hex when they are not letters, digits and spaces (damage).</summary>
    private static string ChunkName(ReadOnlySpan<byte> code)
    {
        foreach (var c in code)
        {
            if (!(char.IsAsciiLetterOrDigit((char)c) || c == (byte)' ')) return $"(bytes {Convert.ToHexString(code)})";
        }
        return System.Text.Encoding.ASCII.GetString(code).TrimEnd();
    }

    /// <summary>WebP: the RIFF container declares its size, and each chunk (VP8, VP8L, VP8X, ALPH, ANIM...) its own.</summary>
    private static string? Webp(ReadOnlySpan<byte> file)
    {
        if (file.Length < 12) return $"the WebP data ends after {file.Length} bytes, inside its RIFF header";
        var riffEnd = 8L + BinaryPrimitives.ReadUInt32LittleEndian(file[4..]);
        if (riffEnd > file.Length) return $"the WebP RIFF header declares {riffEnd} bytes; the file has only {file.Length}";
        long position = 12;
        while (position + 8 <= riffEnd)
        {
            var size = BinaryPrimitives.ReadUInt32LittleEndian(file[(int)(position + 4)..]);
            var end = position + 8 + size;
            if (end > file.Length)
            {
                return $"the WebP {ChunkName(file.Slice((int)position, 4))} chunk at byte {position} needs {end - position} bytes; only {file.Length - position} remain";
            }
            position = end + (size & 1); // chunks are padded to an even size
        }
        return null;
    }
}
