using System.Buffers.Text;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using ProtoPNet.Inference.Explanation;
using ProtoPNet.Inference.Rendering;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace ProtoPNet.Service.Apis;

/// <summary>
/// A heatmap in an answer, a PNG data URI in JSON: drawn over the image's kept pixels as the answer is written, one at a
/// time, so an answer with many heatmaps never holds more than one of them (a batch of 32 images with 10 heatmaps each
/// would otherwise hold 320 pictures as base64 strings). The answer's pixels must stay undisposed until it is written
/// (<see cref="HttpResponse.RegisterForDispose"/>). The price: drawing fails only where nothing else can (out of
/// memory), but if it did once the answer's first bytes were sent, the client would get a cut-off 200, not a problem.
/// </summary>
[JsonConverter(typeof(HeatmapPngJsonConverter))]
public sealed class HeatmapPng
{
    private readonly (Image<Rgb24> Drawing, ActivationMap Map)? _drawn;

    /// <summary>The heatmap of <paramref name="map"/> over <paramref name="drawing"/>, drawn when written.</summary>
    public HeatmapPng(Image<Rgb24> drawing, ActivationMap map) => _drawn = (drawing, map);

    private HeatmapPng(string dataUri) => Example = dataUri;

    /// <summary>A fixed data URI, for the API documentation's examples.</summary>
    public static HeatmapPng ForExample(string dataUri) => new(dataUri);

    internal string? Example { get; }

    internal ArraySegment<byte> RenderPng() => _drawn is var (drawing, map) ? HeatmapRenderer.RenderPng(drawing, map) : throw new InvalidOperationException("An example is not drawn.");
}

/// <summary>Writes a <see cref="HeatmapPng"/> as its data URI string; answers are never read back.</summary>
internal sealed class HeatmapPngJsonConverter : JsonConverter<HeatmapPng>
{
    private static readonly byte[] Prefix = Encoding.ASCII.GetBytes(HeatmapRenderer.PngDataUriPrefix);

    public override HeatmapPng Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        throw new NotSupportedException("A heatmap is only written.");

    public override void Write(Utf8JsonWriter writer, HeatmapPng value, JsonSerializerOptions options)
    {
        if (value.Example is { } example)
        {
            writer.WriteStringValue(example);
            return;
        }
        var png = value.RenderPng();
        // The prefix and base64 need no escaping: the quoted string is written raw, from one buffer of its exact length
        // (not a pooled one: the pool would keep these large arrays, outside the memory budget, and round them up).
        var buffer = GC.AllocateUninitializedArray<byte>((int)HeatmapRenderer.QuotedPngDataUriLength(png.Count));
        buffer[0] = (byte)'"';
        Prefix.CopyTo(buffer, 1);
        Base64.EncodeToUtf8(png, buffer.AsSpan(1 + Prefix.Length), out _, out var written);
        var end = 1 + Prefix.Length + written;
        buffer[end] = (byte)'"';
        writer.WriteRawValue(buffer.AsSpan(0, end + 1), skipInputValidation: true);
    }
}
