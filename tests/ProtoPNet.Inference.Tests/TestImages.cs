using System.Buffers.Binary;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;

namespace ProtoPNet.Inference.Tests;

/// <summary>Small real image files made with ImageSharp for the decoder tests.</summary>
internal static class TestImages
{
    /// <summary>A left-to-right red ramp with a blue square in the top-left corner: orientation is visible.</summary>
    public static Image<Rgba32> Pattern(int width, int height)
    {
        var image = new Image<Rgba32>(width, height);
        for (var y = 0; y < height; y++)
        for (var x = 0; x < width; x++)
        {
            var corner = x < width / 4 && y < height / 4;
            image[x, y] = corner ? new Rgba32(0, 0, 255) : new Rgba32((byte)(255 * x / Math.Max(1, width - 1)), 128, 0);
        }
        return image;
    }

    public static byte[] Encode(Image image, IImageEncoder encoder)
    {
        using var stream = new MemoryStream();
        image.Save(stream, encoder);
        return stream.ToArray();
    }

    /// <summary>A valid PNG signature and IHDR that declare <paramref name="width"/> x <paramref name="height"/>, with no pixel data.</summary>
    public static byte[] PngHeaderOnly(int width, int height)
    {
        using var stream = new MemoryStream();
        stream.Write([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]);
        var ihdr = new byte[13];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(ihdr, width);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), height);
        ihdr[8] = 8; // bit depth
        ihdr[9] = 2; // colour type RGB
        WriteChunk(stream, "IHDR", ihdr);
        WriteChunk(stream, "IEND", []);
        return stream.ToArray();
    }

    private static void WriteChunk(Stream stream, string type, byte[] data)
    {
        Span<byte> length = stackalloc byte[4];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(length, data.Length);
        stream.Write(length);
        var typeBytes = System.Text.Encoding.ASCII.GetBytes(type);
        stream.Write(typeBytes);
        stream.Write(data);
        var crc = Crc32(typeBytes.Concat(data).ToArray());
        Span<byte> crcBytes = stackalloc byte[4];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(crcBytes, crc);
        stream.Write(crcBytes);
    }

    /// <summary>
    /// Rewrites the size a file's header declares, in place: PNG's IHDR (with its CRC), the JPEG frame header (SOF), the
    /// GIF screen and first image descriptor, the BMP info header, the WebP frame header. The pixel data stays as it was.
    /// </summary>
    public static void DeclareSize(byte[] file, string format, long width, long height)
    {
        switch (format)
        {
            case "png":
                BinaryPrimitives.WriteUInt32BigEndian(file.AsSpan(16), checked((uint)width));
                BinaryPrimitives.WriteUInt32BigEndian(file.AsSpan(20), checked((uint)height));
                BinaryPrimitives.WriteUInt32BigEndian(file.AsSpan(29), Crc32(file[12..29]));
                break;
            case "jpeg":
                var frame = Enumerable.Range(2, file.Length - 3).First(i => file[i] == 0xFF && file[i + 1] is 0xC0 or 0xC1 or 0xC2);
                BinaryPrimitives.WriteUInt16BigEndian(file.AsSpan(frame + 5), checked((ushort)height));
                BinaryPrimitives.WriteUInt16BigEndian(file.AsSpan(frame + 7), checked((ushort)width));
                break;
            case "gif":
                BinaryPrimitives.WriteUInt16LittleEndian(file.AsSpan(6), checked((ushort)width));
                BinaryPrimitives.WriteUInt16LittleEndian(file.AsSpan(8), checked((ushort)height));
                var block = 13 + ((file[10] & 0x80) != 0 ? 3 << ((file[10] & 0x07) + 1) : 0);
                while (file[block] == 0x21)   // extensions: label, then sub-blocks up to an empty one
                {
                    block += 2;
                    while (file[block] != 0) block += file[block] + 1;
                    block++;
                }
                BinaryPrimitives.WriteUInt16LittleEndian(file.AsSpan(block + 5), checked((ushort)width));
                BinaryPrimitives.WriteUInt16LittleEndian(file.AsSpan(block + 7), checked((ushort)height));
                break;
            case "bmp":
                BinaryPrimitives.WriteInt32LittleEndian(file.AsSpan(18), checked((int)width));
                BinaryPrimitives.WriteInt32LittleEndian(file.AsSpan(22), checked((int)height));
                break;
            case "webp-lossy":   // the VP8 frame's 14-bit sides, after the RIFF header, the chunk header, frame tag and start code
                if (!file.AsSpan(12, 4).SequenceEqual("VP8 "u8)) throw new ArgumentException("not a simple lossy WebP", nameof(file));
                BinaryPrimitives.WriteUInt16LittleEndian(file.AsSpan(26), checked((ushort)width));
                BinaryPrimitives.WriteUInt16LittleEndian(file.AsSpan(28), checked((ushort)height));
                break;
            case "webp":   // VP8L: a signature byte, then 14 bits of width - 1 and 14 of height - 1
                if (!file.AsSpan(12, 4).SequenceEqual("VP8L"u8)) throw new ArgumentException("not a simple lossless WebP", nameof(file));
                var bits = BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(21)) & ~0x0FFFFFFFu;
                BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(21), bits | checked((uint)(width - 1)) | checked((uint)(height - 1)) << 14);
                break;
            default:
                throw new ArgumentException($"no header size to rewrite in {format}", nameof(format));
        }
    }

    /// <summary>The PNG with one more chunk (its CRC right) just before its first IDAT.</summary>
    public static byte[] WithChunkBeforeIdat(byte[] png, string type, byte[] data)
    {
        var idat = png.AsSpan().IndexOf("IDAT"u8) - 4;
        return [.. png[..idat], .. PngChunk(type, data), .. png[idat..]];
    }

    /// <summary>A PNG chunk: length, type, data and its CRC.</summary>
    public static byte[] PngChunk(string type, byte[] data)
    {
        var typeBytes = System.Text.Encoding.ASCII.GetBytes(type);
        var chunk = new byte[12 + data.Length];
        BinaryPrimitives.WriteUInt32BigEndian(chunk, (uint)data.Length);
        typeBytes.CopyTo(chunk, 4);
        data.CopyTo(chunk, 8);
        BinaryPrimitives.WriteUInt32BigEndian(chunk.AsSpan(8 + data.Length), Crc32([.. typeBytes, .. data]));
        return chunk;
    }

    private static uint Crc32(byte[] data)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var b in data)
        {
            crc ^= b;
            for (var k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
        }
        return ~crc;
    }

    public static readonly PngEncoder Png = new();
}
