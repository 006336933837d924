using ProtoPNet.Service.Apis;
using ProtoPNet.Service.Hosting;
using ProtoPNet.Service.Problems;

if (HelpCommand.IsAsked(args))
{
    Console.WriteLine(HelpCommand.Text);
    return 0;
}
if (args.Contains(HealthcheckCommand.Argument)) return await HealthcheckCommand.RunAsync(args);
SocketCompletions.RunInlineUnlessConfigured();

try
{
    var builder = WebApplication.CreateBuilder(args);
    builder.UseDefaultListenAddress();
    builder.AddServerLimits();
    builder.AddServiceLogging();
    builder.AddProblemResponses();
    builder.AddInference();
    builder.AddServing();
    builder.AddRateLimiting();
    builder.AddTracing();
    builder.AddTraining();
    builder.AddApiDocumentation();

    var app = builder.Build();
    app.ValidateOptions();
    app.UseOpenInferenceContentType();
    app.UseProblemResponses();
    app.UseServiceRequestLogging();
    app.UseFrameworkProblems();
    app.UseServing();
    app.UseRateLimiting();
    app.UseRequestShapeRules();
    app.UseApiDocumentation();
    app.UseWebPage();

    // Every endpoint answers the problems its code throws (ProblemExceptionFilter), and HEAD where it answers GET.
    var api = app.MapGroup("").AnswerProblems().AnswerHead();
    api.MapClassifyApi();
    api.MapModelsApi();
    api.MapHealthApi();
    api.MapCardApi();
    api.MapExamplesApi();
    api.MapOperationsApi();
    api.MapV2Api();
    api.MapTrainingApi();

    await app.RunAsync();
    return 0;
}
catch (Exception error) when (OptionsValidationExtensions.StartFailure(error) is { } reason && OptionsValidationExtensions.IsOwnProcess)
{
    // A bad setting, an address taken, CUDA asked for and absent: one line that says so, and exit status 1, rather than
    // an unhandled exception's stack trace.
    await Console.Error.WriteLineAsync($"ProtoPNet Service cannot start: {reason}");
    return 1;
}

/// <summary>The entry point, visible to the tests' WebApplicationFactory.</summary>
public partial class Program;
