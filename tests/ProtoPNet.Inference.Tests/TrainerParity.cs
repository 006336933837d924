using ProtoPNet.Inference.Preprocessing;

namespace ProtoPNet.Inference.Tests;

/// <summary>
/// What the parity tests compare: the trainer's verdict on a file (a Python script prints "name read HEX" with the RGB
/// bytes <c>open_image</c> gives, or "name refused: reason") against this decoder's pixels or refusal.
/// </summary>
internal static class TrainerParity
{
    /// <summary>The decoded image's bytes, red, green, blue, row by row; or none when it is refused.</summary>
    internal static byte[] Decoded(ImageDecoder decoder, byte[] file)
    {
        try
        {
            using var decoded = decoder.Decode(file);
            return RgbBytes(decoded);
        }
        catch (ImageRejectedException)
        {
            return [];
        }
    }

    internal static byte[] RgbBytes(DecodedImage decoded)
    {
        var bytes = new byte[decoded.Pixels.Width * decoded.Pixels.Height * 3];
        decoded.Pixels.CopyPixelDataTo(bytes);
        return bytes;
    }

    /// <summary>The trainer's pixels from its verdict, "read" and the RGB bytes in hex.</summary>
    internal static byte[] TrainerPixels(string verdict) => Convert.FromHexString(verdict["read ".Length..]);

    internal static string? Refusal(ImageDecoder decoder, byte[] file)
    {
        try
        {
            decoder.Decode(file).Dispose();
            return null;
        }
        catch (ImageRejectedException refusal)
        {
            return refusal.Message;
        }
    }

    internal static Dictionary<string, string> Verdicts(string output) =>
        output.Trim().Split('\n').Select(line => line.Trim().Split(' ', 2)).ToDictionary(parts => parts[0], parts => parts[1]);
}
