using System.Diagnostics;

namespace ProtoPNet.Tests.Shared;

/// <summary>
/// Pillow (PIL), the imaging library the trainer uses, run through /usr/bin/python3: files ImageSharp cannot write
/// (progressive JPEG) and the trainer's own preprocessing as a reference. One source file linked into the test projects.
/// </summary>
public static class Pillow
{
    private const string Python = "/usr/bin/python3";

    /// <summary>
    /// Re-encodes an image file with Pillow in <paramref name="format"/> with Python keyword <paramref name="options"/>,
    /// e.g. ("JPEG", "quality=90, progressive=True") for a progressive JPEG (several scans, each refining the whole picture).
    /// </summary>
    public static byte[] Reencode(byte[] image, string format, string options)
    {
        var directory = Directory.CreateTempSubdirectory("protopnet-pillow-").FullName;
        try
        {
            var input = Path.Combine(directory, "input");
            var output = Path.Combine(directory, "output");
            File.WriteAllBytes(input, image);
            RunPython("import sys\nfrom PIL import Image\n" +
                      $"Image.open(sys.argv[1]).convert('RGB').save(sys.argv[2], sys.argv[3], {options})", input, output, format);
            return File.ReadAllBytes(output);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>Runs a Python program (with the trainer importable); returns its standard output, throws with its output when it fails.</summary>
    public static string RunPython(string program, params string[] arguments)
    {
        var start = new ProcessStartInfo(Python) { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add(program);
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        start.Environment["PYTHONPATH"] = Path.Combine(Trainer.RepositoryRoot, "src", "trainer");
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(2)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException("python did not finish in 2 minutes");
        }
        if (process.ExitCode != 0) throw new InvalidOperationException($"python failed ({process.ExitCode}):\n{stderr.Result}\n{stdout.Result}");
        return stdout.Result;
    }
}
