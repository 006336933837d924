using ProtoPNet.Service.Apis;
using ProtoPNet.Service.Hosting;

if (args.Contains(HealthcheckCommand.Argument)) return await HealthcheckCommand.RunAsync();

var builder = WebApplication.CreateBuilder(args);
builder.UseDefaultListenAddress();
builder.AddServiceLogging();
builder.AddProblemResponses();
builder.AddInference();
builder.AddServing();
builder.AddApiDocumentation();

var app = builder.Build();
app.UseProblemResponses();
app.UseServiceRequestLogging();
app.UseServing();
app.UseApiDocumentation();
app.UseWebPage();

app.MapClassifyApi();
app.MapModelsApi();
app.MapHealthApi();
app.MapCardApi();
app.MapExamplesApi();
app.MapOperationsApi();
app.MapV2Api();

await app.RunAsync();
return 0;

/// <summary>The entry point, visible to the tests' WebApplicationFactory.</summary>
public partial class Program;
