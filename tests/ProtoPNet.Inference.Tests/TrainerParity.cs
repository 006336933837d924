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

    /// <summary>
    /// Every file in <paramref name="folder"/> judged otherwise here than by the trainer (<paramref name="verdicts"/>), one
    /// line each: one the trainer reads that is refused or decodes to other pixels, one it refuses that decodes.
    /// </summary>
    internal static List<string> Disagreements(ImageDecoder decoder, string folder, IReadOnlyDictionary<string, string> verdicts)
    {
        var disagreements = new List<string>();
        foreach (var (name, verdict) in verdicts)
        {
            var file = File.ReadAllBytes(Path.Combine(folder, name));
            var refusal = Refusal(decoder, file);
            var trainerReads = verdict.StartsWith("read", StringComparison.Ordinal);
            if (trainerReads != refusal is null) disagreements.Add($"{name}: the trainer {(trainerReads ? "reads it" : verdict)}, here {refusal ?? "read"}");
            else if (trainerReads && !Decoded(decoder, file).SequenceEqual(TrainerPixels(verdict))) disagreements.Add($"{name}: other pixels than the trainer's");
        }
        return disagreements;
    }

    /// <summary>Fails, naming each, when any file in <paramref name="folder"/> is judged otherwise here than by the trainer.</summary>
    internal static void AssertJudgedAlike(ImageDecoder decoder, string folder, IReadOnlyDictionary<string, string> verdicts)
    {
        var disagreements = Disagreements(decoder, folder, verdicts);
        Assert.True(disagreements.Count == 0, string.Join('\n', disagreements));
    }

    /// <summary>Whether the trainer refuses exactly the files whose names begin with "refused" (so the comparison covers both kinds).</summary>
    internal static void AssertRefusedByName(IReadOnlyDictionary<string, string> verdicts) =>
        Assert.All(verdicts, verdict => Assert.StartsWith(verdict.Key.StartsWith("refused", StringComparison.Ordinal) ? "refused" : "read", verdict.Value));

    internal static Dictionary<string, string> Verdicts(string output) =>
        output.Trim().Split('\n').Select(line => line.Trim().Split(' ', 2)).ToDictionary(parts => parts[0], parts => parts[1]);

    /// <summary>
    /// Python that a parity script begins with: the modules it uses, <c>path(name)</c> in the folder given as its
    /// argument, and <c>verdicts()</c>, which prints the trainer's verdict on every file there, one line each.
    /// </summary>
    internal const string Script = """
        import io, os, random, struct, sys, zlib
        from PIL import Image, PngImagePlugin
        from protopnet_trainer.image_files import UnreadableImageError, open_image
        folder = sys.argv[1]
        def path(name): return os.path.join(folder, name)
        def verdicts():
            for name in sorted(os.listdir(folder)):
                try:
                    print(name, "read", open_image(path(name)).tobytes().hex())
                except UnreadableImageError as error:
                    print(name, "refused:", error.reason.replace("\n", " "))

        """;
}
