using Microsoft.AspNetCore.Http.HttpResults;
using ProtoPNet.Service.Classifying;
using ProtoPNet.Service.Models;
using ProtoPNet.Service.Problems;
using ProtoPNet.Service.Serving;
using Microsoft.Extensions.Options;

namespace ProtoPNet.Service.Apis;

/// <summary>Liveness: the process answers, and its decoding makes progress.</summary>
public sealed record LiveResponse(string Status);

/// <summary>Readiness: the models served, warmed up, and the execution provider in use.</summary>
public sealed record ReadyResponse(string Status, string ExecutionProvider, string? DefaultModel, IReadOnlyList<string> Models);

/// <summary>GET /health/live and /health/ready.</summary>
public static class HealthApi
{
    public static IEndpointRouteBuilder MapHealthApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/health").WithTags("Health");

        group.MapGet("/live", GetLive)
            .RunsInline()
            .WithName("Live")
            .WithSummary("Liveness probe")
            .WithDescription("200 whenever the process serves HTTP, with or without a model; 500 decoding-stuck when every turn to decode images has been held for Batching:DecodeStuckSeconds with none given since (decodes that never return), so that the orchestrator restarts the service.")
            .Produces<LiveResponse>()
            .ProducesProblem(StatusCodes.Status500InternalServerError);

        group.MapGet("/ready", GetReady)
            .RunsInline()
            .WithName("Ready")
            .WithSummary("Readiness probe")
            .WithDescription("200 when at least one model is loaded, verified and warmed up, with the execution provider in use; otherwise 503 with Retry-After and a problem body.")
            .Produces<ReadyResponse>()
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);
        return app;
    }

    internal static Results<Ok<LiveResponse>, ProblemHttpResult> GetLive(PreprocessingGate preprocessing, IOptions<BatchingOptions> batching) =>
        DecodingStuck(preprocessing, batching.Value) is { } stuck
            ? ProblemCatalog.Problem(ProblemCatalog.DecodingStuck, stuck)
            : TypedResults.Ok(new LiveResponse("alive"));

    /// <summary>Why the service is not live (the same for /health/live and /v2/health/live), or null while it is.</summary>
    internal static string? DecodingStuck(PreprocessingGate preprocessing, BatchingOptions batching) =>
        preprocessing.StuckFor(DateTime.UtcNow) is { } held
            ? $"All {PreprocessingGate.Turns} turns to decode images have been held for {held.TotalSeconds:0} s with none given since (Batching:DecodeStuckSeconds {batching.DecodeStuckSeconds}): decodes that never return hold them, and every request that sends an image is refused. Restart the service."
            : null;

    internal static Results<Ok<ReadyResponse>, ProblemHttpResult> GetReady(ModelRegistry registry, HttpResponse response, IHostApplicationLifetime lifetime)
    {
        var catalog = registry.Catalog;
        var provider = registry.Provider.Provider;
        if (NotReady(catalog, lifetime) is { } notReady)
        {
            var problem = ProblemCatalog.Problem(notReady.Kind, notReady.Detail);
            if (notReady.Kind == ProblemCatalog.NoModelReady)   // models are on their way: ask again
            {
                response.Headers.RetryAfter = ProblemCatalog.RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
                problem.ProblemDetails.Extensions["executionProvider"] = provider;
            }
            return problem;
        }
        return TypedResults.Ok(new ReadyResponse("ready", provider, catalog.DefaultModel,
            catalog.Families.Values.Select(f => $"{f.Name}@{f.Served.Version}").ToArray()));
    }

    /// <summary>
    /// Why the service is not ready for new traffic (the same for /health/ready and /v2/health/ready), or null while it
    /// is: a shutdown has begun (a load balancer that still asks stops sending while the requests in progress finish), or
    /// no model is loaded yet.
    /// </summary>
    internal static (ProblemKind Kind, string Detail)? NotReady(ModelCatalog catalog, IHostApplicationLifetime lifetime) =>
        lifetime.ApplicationStopping.IsCancellationRequested ? (ProblemCatalog.ShuttingDown, ProblemCatalog.ShuttingDown.ExampleDetail)
        : catalog.Families.Count == 0 ? (ProblemCatalog.NoModelReady, catalog.NoModelDetail)
        : null;
}
