using System.Globalization;
using ProtoPNet.Inference.Runtime;

namespace ProtoPNet.Benchmarks;

public sealed record BenchmarkOptions(string Bundle, int[] Concurrency, double Seconds, string? Image, string? Url, int IntraOpThreads,
    int MaxBatchSize, bool Fixed, int Rounds, double SoakSeconds, string[] ServiceSettings, bool HttpClient,
    string[] VersusSettings, string? VersusBuild, bool ClassifyOnly = false)
{
    /// <summary>The provider the service is given with --set Inference:ExecutionProvider (auto unless set), which the
    /// in-process baseline runs on too.</summary>
    public ExecutionProviderKind ExecutionProvider { get; private init; }

    public const string Usage =
        "usage: benchmarks/run.sh <bundle folder> [--seconds N] [--concurrency 1,4,16,32,64] [--rounds 2] [--image photo.jpg] " +
        "[--max-batch-size 16] [--intra-op-threads N] [--no-fixed] [--set Section:Key=value] [--versus Section:Key=value] " +
        "[--versus-build dir] [--soak seconds] [--httpclient] [--classify-only] (options described at the top of benchmarks/run.sh)";

    public static bool AsksForHelp(string[] args) => args.Any(a => a is "-h" or "--help");

    public static BenchmarkOptions Parse(string[] args)
    {
        string? bundle = null, image = null, url = null, versusBuild = null;
        int[] concurrency = [1, 4, 16, 32, 64];
        double seconds = 10;
        var intraOp = 0;
        var maxBatchSize = 16;
        var fixedService = true;
        var rounds = 2;
        var httpClient = false;
        var classifyOnly = false;
        double soak = 0;
        var settings = new List<string>();
        var versus = new List<string>();
        for (var i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            int Int() => int.TryParse(Next(), CultureInfo.InvariantCulture, out var n) ? n : throw new ArgumentException($"{args[i - 1]} needs a whole number, not '{args[i]}'");
            double Number() => double.TryParse(Next(), CultureInfo.InvariantCulture, out var x) ? x : throw new ArgumentException($"{args[i - 1]} needs a number, not '{args[i]}'");
            switch (args[i])
            {
                case "--bundle": bundle = Next(); break;
                case "--concurrency": concurrency = Next().Split(',').Select(c => int.TryParse(c, CultureInfo.InvariantCulture, out var n) && n > 0 ? n : throw new ArgumentException($"--concurrency needs positive whole numbers, as 1,32, not '{args[i]}'")).ToArray(); break;
                case "--seconds": seconds = Number(); break;
                case "--image": image = Next(); break;
                case "--url": url = Next(); break;
                case "--intra-op-threads": intraOp = Int(); break;
                case "--max-batch-size": maxBatchSize = Int(); break;
                case "--no-fixed": fixedService = false; break;
                case "--rounds": rounds = Int(); break;
                case "--soak": soak = Number(); break;
                case "--set": settings.Add(Next()); break;
                case "--versus": versus.Add(Next()); break;
                case "--versus-build": versusBuild = Next(); break;
                case "--httpclient": httpClient = true; break;
                case "--classify-only": classifyOnly = true; break;
                default: throw new ArgumentException($"unknown option {args[i]}");
            }
        }
        if (bundle is null) throw new ArgumentException("--bundle <models/name/version> is required");
        if (settings.Concat(versus).Any(s => !s.Contains('='))) throw new ArgumentException("--set and --versus need Section:Key=value");
        if (rounds < 1) throw new ArgumentException("--rounds must be 1 or more");
        var provider = settings.Select(s => s.Split('=', 2)).LastOrDefault(s => s[0] is "Inference:ExecutionProvider" or "Inference__ExecutionProvider")?[1];
        var kind = ExecutionProviderKind.Auto;
        if (provider is not null && (!Enum.TryParse(provider, ignoreCase: true, out kind) || !Enum.IsDefined(kind) || char.IsDigit(provider[0])))
            throw new ArgumentException($"Inference:ExecutionProvider is auto, cuda or cpu, not '{provider}'");
        return new BenchmarkOptions(bundle, concurrency, seconds, image, url, intraOp, maxBatchSize, fixedService, rounds, soak, settings.ToArray(), httpClient,
            versus.ToArray(), versusBuild, classifyOnly) { ExecutionProvider = kind };
    }
}
