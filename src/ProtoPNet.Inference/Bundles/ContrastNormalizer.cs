namespace ProtoPNet.Inference.Bundles;

/// <summary>
/// The bundle's optional contrast step (<c>input.contrast: "auto"</c>), so that a model trained on light objects on a
/// dark ground also reads product photos, dark objects on a light ground. The trainer applies the same step to every
/// image it trains and tests on (protopnet_trainer/contrast.py); both compute, in float32 and in this order:
/// the ground is the lower median of the border ring (outermost rows and columns, all channels together); when it is
/// above 0.5 the image is inverted; then x -> max(0, (x - ground) / (peak - ground)), unless that span is under
/// 15.5/255: nothing 16 levels brighter than the ground is a blank picture, made all ground (0), which looks like no
/// prototype (left grey, the network took it for a garment with confidence).
/// An image with a black border and a white brightest pixel passes unchanged.
/// </summary>
public static class ContrastNormalizer
{
    public const string None = "none";
    public const string Auto = "auto";
    private const float InvertAbove = 0.5f;
    private const double MinSpan = 15.5 / 255.0;

    public static bool IsKnown(string? mode) => mode is null or None or Auto;

    /// <summary>Normalises one image [C, H, W] in place; returns whether it was inverted.</summary>
    public static bool Normalize(Span<float> image, int channels, int height, int width)
    {
        var ground = LowerMedianOfBorder(image, channels, height, width);
        var inverted = ground > InvertAbove;
        if (inverted)
        {
            for (var i = 0; i < image.Length; i++) image[i] = 1f - image[i];
            ground = 1f - ground;
        }
        var peak = float.NegativeInfinity;
        foreach (var value in image) peak = MathF.Max(peak, value);
        var span = peak - ground;
        if (span < MinSpan)
        {
            image.Clear();
            return inverted;
        }
        for (var i = 0; i < image.Length; i++) image[i] = MathF.Max(0f, (image[i] - ground) / span);
        return inverted;
    }

    private static float LowerMedianOfBorder(ReadOnlySpan<float> image, int channels, int height, int width)
    {
        var plane = height * width;
        var ring = new List<float>(channels * 2 * (height + width));
        for (var c = 0; c < channels; c++)
        {
            var channel = image.Slice(c * plane, plane);
            if (height < 3 || width < 3)
            {
                foreach (var value in channel) ring.Add(value);
                continue;
            }
            for (var x = 0; x < width; x++)
            {
                ring.Add(channel[x]);
                ring.Add(channel[(height - 1) * width + x]);
            }
            for (var y = 1; y < height - 1; y++)
            {
                ring.Add(channel[y * width]);
                ring.Add(channel[y * width + width - 1]);
            }
        }
        ring.Sort();
        return ring[(ring.Count - 1) / 2];
    }
}
