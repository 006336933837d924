namespace ProtoPNet.Inference.Bundles;

/// <summary>The probe image of MODEL_BUNDLE.md: element i of [1, C, H, W] is ((i * 7919) mod 1000) / 999.</summary>
public static class ProbeInput
{
    public const string Name = "ramp-7919";

    public static float[] Create(int channels, int height, int width)
    {
        var values = new float[channels * height * width];
        for (long i = 0; i < values.Length; i++)
        {
            values[i] = (float)((i * 7919) % 1000) / 999f;
        }
        return values;
    }
}
