namespace ProtoPNet.Service.Hosting;

/// <summary>
/// <c>ProtoPNet.Service --help</c> (or <c>-h</c>, <c>-?</c>): how the service is configured, printed instead of starting
/// it. The arguments are otherwise settings, and an unknown switch was passed over: <c>--help</c> started a service on
/// port 8080.
/// </summary>
public static class HelpCommand
{
    private static readonly string[] Arguments = ["--help", "-h", "-?", "/?"];

    public static bool IsAsked(string[] args) => args.Any(arg => Arguments.Contains(arg, StringComparer.Ordinal));

    public const string Text = """
        ProtoPNet Service: image classification that shows its evidence (README.md; the HTTP API: docs/API.md, /swagger).

        Usage:
          ProtoPNet.Service [--Section:Key value]...    serve (http://localhost:8080 unless --urls says otherwise)
          ProtoPNet.Service --healthcheck [--urls URL]   ask the running service's /health/ready: exit 0 when ready, 1 if not
          ProtoPNet.Service --help                       this text

        Settings come from appsettings.json, then environment variables (Section__Key: Models__Root=/models), then the
        command line (--Section:Key value: --Models:Root /models); a bad value, or a key in one of the service's sections
        that no setting reads, stops the start with one line naming it. Every setting is in the README's tables
        ("Inference service", "Production serving"); the ones a first start needs:
          --urls http://127.0.0.1:8080          where to listen (also ASPNETCORE_URLS)
          --Models:Root DIR                     the model repository (default: the repository's models/)
          --Security:AdminApiKey KEY            X-Api-Key of the administrative endpoints (reload, /training)
          --Training:JobsRoot DIR               the jobs folder shared with the training workers
          --Training:DataRoot DIR               the folder a training job's data may come from
        """;
}
