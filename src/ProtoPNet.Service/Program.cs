using ProtoPNet.Service.Apis;
using ProtoPNet.Service.Hosting;
using ProtoPNet.Service.Problems;

if (args.Contains(HealthcheckCommand.Argument)) return await HealthcheckCommand.RunAsync();
SocketCompletions.RunInlineUnlessConfigured();

var builder = WebApplication.CreateBuilder(args);
builder.UseDefaultListenAddress();
builder.AddServiceLogging();
builder.AddProblemResponses();
builder.AddInference();
builder.AddServing();
builder.AddTraining();
builder.AddApiDocumentation();

var app = builder.Build();
app.ValidateOptions();
app.UseProblemResponses();
app.UseServiceRequestLogging();
app.UseServing();
app.UseApiDocumentation();
app.UseWebPage();

// Every endpoint answers the problems its code throws (ProblemExceptionFilter).
var api = app.MapGroup("").AnswerProblems();
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

/// <summary>The entry point, visible to the tests' WebApplicationFactory.</summary>
public partial class Program;
