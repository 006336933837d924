using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using ProtoPNet.Service.Tests.Infrastructure;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Tiff;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.PixelFormats;
using Xunit.Abstractions;

namespace ProtoPNet.Service.Tests.Serving;

/// <summary>
/// 1,200 mutated image files (bit flips, truncations, wrong headers, giant declared sizes, spliced bytes) through POST
/// /classify: each answer is 2xx or 4xx, never 5xx, and memory stays bounded. Seeded, so a failure replays.
/// </summary>
[Collection(BundlesCollection.Name)]
public class FuzzTests(TrainerBundles bundles, ITestOutputHelper output)
{
    private const int Seed = 20261129;
    private const int Files = 1200;

    [Fact]
    public async Task MutatedImagesGetA2xxOr4xxAndMemoryStaysBounded()
    {
        var client = bundles.Service.CreateClient();
        var bases = BaseImages();
        var random = new Random(Seed);
        var cases = Enumerable.Range(0, Files).Select(i =>
        {
            var (format, contentType, bytes) = bases[random.Next(bases.Length)];
            var (kind, mutated) = Mutate(format, bytes, random);
            // Mostly the file's own content type, sometimes another accepted one (a lying client).
            var type = random.Next(5) == 0 ? bases[random.Next(bases.Length)].ContentType : contentType;
            return (Index: i, Kind: kind, Bytes: mutated, ContentType: type);
        }).ToArray();

        // Warm up first, so the measurement sees steady-state pools, not first-use allocations.
        foreach (var (_, contentType, bytes) in bases) await client.PostAsync("/classify?heatmaps=png", Http.Raw(bytes, contentType));
        var heapBefore = GC.GetTotalMemory(forceFullCollection: true);
        var workingSetBefore = Process.GetCurrentProcess().WorkingSet64;

        var statuses = new ConcurrentDictionary<string, int>();
        var stopwatch = Stopwatch.StartNew();
        await Parallel.ForEachAsync(cases, new ParallelOptions { MaxDegreeOfParallelism = 4 }, async (item, _) =>
        {
            var path = item.Index % 3 == 0 ? "/classify?heatmaps=png" : item.Index % 3 == 1 ? "/classify" : "/classify/batch";
            HttpContent content = path == "/classify/batch"
                ? Http.Multipart(("image", item.Bytes, item.ContentType))
                : item.Index % 2 == 0 ? Http.Raw(item.Bytes, item.ContentType) : Http.Multipart(("image", item.Bytes, item.ContentType));
            using var response = await client.PostAsync(path, content);
            var status = (int)response.StatusCode;
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(status is >= 200 and < 300 or >= 400 and < 500, $"case {item.Index} ({item.Kind}, {item.ContentType}, {path}): {status} {body}");
            statuses.AddOrUpdate($"{item.Kind} {status}", 1, (_, n) => n + 1);
        });
        var heapAfter = GC.GetTotalMemory(forceFullCollection: true);
        var workingSetAfter = Process.GetCurrentProcess().WorkingSet64;

        output.WriteLine($"{Files} files in {stopwatch.Elapsed.TotalSeconds:0.0} s; managed heap {heapBefore / 1e6:0.0} -> {heapAfter / 1e6:0.0} MB, " +
                         $"working set {workingSetBefore / 1e6:0} -> {workingSetAfter / 1e6:0} MB");
        foreach (var (key, count) in statuses.OrderBy(s => s.Key)) output.WriteLine($"  {key}: {count}");
        Assert.True(statuses.Keys.Any(k => k.EndsWith(" 200")), "no mutated file was still decodable: the mutations are too coarse");
        Assert.True(statuses.Keys.Any(k => k.StartsWith("giant", StringComparison.Ordinal) && k.EndsWith(" 422")) ||
                    statuses.Keys.Any(k => k.StartsWith("giant", StringComparison.Ordinal) && k.EndsWith(" 400")));
        Assert.True(heapAfter - heapBefore < 64_000_000, $"the managed heap grew by {(heapAfter - heapBefore) / 1e6:0.0} MB");
        Assert.True(workingSetAfter - workingSetBefore < 512_000_000, $"the working set grew by {(workingSetAfter - workingSetBefore) / 1e6:0} MB");
        // Still serving normally.
        await Http.JsonAsync(await client.PostAsync("/classify", Http.Raw(bases[0].Bytes, bases[0].ContentType)));
    }

    private (string Format, string ContentType, byte[] Bytes)[] BaseImages()
    {
        using var image = Image.Load<Rgb24>(Http.BundleImage(bundles.SmokeBundle, 2, 40, 30));
        (string, string, IImageEncoder)[] encoders =
        [
            ("png", "image/png", new PngEncoder()), ("jpeg", "image/jpeg", new JpegEncoder { Quality = 80 }), ("gif", "image/gif", new GifEncoder()),
            ("bmp", "image/bmp", new BmpEncoder()), ("webp", "image/webp", new WebpEncoder()), ("tiff", "image/tiff", new TiffEncoder()),
        ];
        return encoders.Select(e => (e.Item1, e.Item2, Http.Encode(image, e.Item3))).ToArray();
    }

    private static (string Kind, byte[] Bytes) Mutate(string format, byte[] original, Random random)
    {
        var bytes = (byte[])original.Clone();
        switch (random.Next(6))
        {
            case 0:
                for (var flips = 1 + random.Next(16); flips > 0; flips--) bytes[random.Next(bytes.Length)] ^= (byte)(1 << random.Next(8));
                return ("bitflip", bytes);
            case 1:
                return ("truncated", bytes[..random.Next(bytes.Length)]);
            case 2:
                byte[][] magics = [[0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A], [0xFF, 0xD8, 0xFF, 0xE0], "GIF89a"u8.ToArray(), "BM"u8.ToArray(),
                    "RIFF\0\0\0\0WEBP"u8.ToArray(), [0x49, 0x49, 0x2A, 0x00], [0, 0, 0, 0]];
                var magic = magics[random.Next(magics.Length)];
                Array.Copy(magic, bytes, Math.Min(magic.Length, bytes.Length));
                return ("wrongheader", bytes);
            case 3:
                return ("giant", GiantDeclaredSize(format, bytes, random));
            case 4:
                // A run of bytes copied from elsewhere in the file over a random place (chunk boundaries, lengths, tables).
                var from = random.Next(bytes.Length);
                var to = random.Next(bytes.Length);
                var length = Math.Min(random.Next(1, 64), Math.Min(bytes.Length - from, bytes.Length - to));
                Array.Copy(original, from, bytes, to, length);
                return ("spliced", bytes);
            default:
                for (var i = 0; i < 1 + random.Next(4); i++) bytes[random.Next(bytes.Length)] = (byte)random.Next(256);
                return ("bytes", bytes);
        }
    }

    /// <summary>Headers that declare up to 100000 x 100000 pixels on a file of a few hundred bytes.</summary>
    private static byte[] GiantDeclaredSize(string format, byte[] bytes, Random random)
    {
        var size = random.Next(2) == 0 ? 100_000 : 65_000;
        switch (format)
        {
            case "png":
                // IHDR is the first chunk: width and height at 16 and 20, its CRC (over type and data) at 29.
                BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(16), size);
                BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(20), size);
                BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(29), Crc32(bytes.AsSpan(12, 17)));
                return bytes;
            case "bmp":
                BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(18), size);
                BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(22), size);
                return bytes;
            case "gif":
                BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(6), 65535);
                BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(8), 65535);
                return bytes;
            case "jpeg":
                // The start-of-frame marker (FFC0..FFC2) holds height and width 5 and 7 bytes after it.
                for (var i = 2; i + 9 < bytes.Length; i++)
                {
                    if (bytes[i] == 0xFF && bytes[i + 1] is 0xC0 or 0xC1 or 0xC2)
                    {
                        BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(i + 5), 65500);
                        BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(i + 7), 65500);
                        break;
                    }
                }
                return bytes;
            default:
                // WebP and TIFF: overwrite the first plausible dimension fields with large values.
                for (var i = 12; i < Math.Min(40, bytes.Length - 1); i += 2) BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(i), 0xFFF0);
                return bytes;
        }
    }

    private static uint Crc32(ReadOnlySpan<byte> data)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var b in data)
        {
            crc ^= b;
            for (var k = 0; k < 8; k++) crc = (crc & 1) != 0 ? 0xEDB88320u ^ (crc >> 1) : crc >> 1;
        }
        return ~crc;
    }
}
