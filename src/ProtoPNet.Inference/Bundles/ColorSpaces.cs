namespace ProtoPNet.Inference.Bundles;

public enum ColorSpace { Rgb, Gray }

public static class ColorSpaces
{
    public static bool TryParse(string? text, out ColorSpace colorSpace)
    {
        switch (text?.Trim().ToLowerInvariant())
        {
            case "rgb":
                colorSpace = ColorSpace.Rgb;
                return true;
            case "gray" or "grey" or "l":
                colorSpace = ColorSpace.Gray;
                return true;
            default:
                colorSpace = default;
                return false;
        }
    }

    public static int ChannelCount(ColorSpace colorSpace) => colorSpace == ColorSpace.Rgb ? 3 : 1;
}
