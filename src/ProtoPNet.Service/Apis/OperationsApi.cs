using Microsoft.AspNetCore.Http.HttpResults;
using ProtoPNet.Service.Models;
using ProtoPNet.Service.Problems;
using ProtoPNet.Service.Serving;

namespace ProtoPNet.Service.Apis;

/// <summary>What POST /models/{name}/reload changed, what is served now, and its folders refused or not loading yet.</summary>
public sealed record ReloadResponse(string Model, string ServedVersion, IReadOnlyList<string> Versions, IReadOnlyList<string> Loaded,
    IReadOnlyList<string> Removed, IReadOnlyList<RefusedBundleResponse> Refused, IReadOnlyList<SettlingBundleResponse> Settling);

/// <summary>What POST /models/reload changed, for every model, what is served now, and the folders refused or not loading yet.</summary>
public sealed record ReloadAllResponse(IReadOnlyList<string> Serving, string? DefaultModel, IReadOnlyList<string> Loaded,
    IReadOnlyList<string> Removed, IReadOnlyList<RefusedBundleResponse> Refused, IReadOnlyList<SettlingBundleResponse> Settling);

/// <summary>GET /metrics and the administrative rescans, POST /models/reload and POST /models/{name}/reload.</summary>
public static class OperationsApi
{
    public static IEndpointRouteBuilder MapOperationsApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/metrics", (PrometheusExposition exposition) => TypedResults.Text(exposition.Scrape(), PrometheusExposition.ContentType))
            .WithTags("Health")
            .WithName("Metrics")
            .WithSummary("Prometheus metrics")
            .WithDescription("""
                Prometheus text format: `protopnet_requests_total{model,version,endpoint,status}`,
                `protopnet_request_duration_seconds`, `protopnet_queue_duration_seconds`, `protopnet_inference_duration_seconds`
                (one network run), `protopnet_explanation_duration_seconds` (one image), `protopnet_batch_size` (images per run),
                `protopnet_queue_depth`, `protopnet_decode_waiting`, `protopnet_drawing_waiting`, `protopnet_spooled_bytes`,
                `protopnet_buffered_bytes`, `protopnet_connection_buffer_bytes`, `protopnet_model_loads_total{model,result}`, `protopnet_models_refused`,
                `protopnet_decoder_faults_total`, `protopnet_model_ready{model,version,default}` and
                `protopnet_execution_provider_info{provider}`; and the .NET runtime's, for the process:
                `dotnet_gc_pause_time_seconds_total`, `dotnet_gc_collections_total{gc_heap_generation}`,
                `dotnet_gc_heap_total_allocated_bytes_total`, `dotnet_gc_last_collection_heap_size_bytes{gc_heap_generation}`,
                `dotnet_gc_last_collection_memory_committed_size_bytes`, `dotnet_process_memory_working_set_bytes`,
                `dotnet_process_cpu_time_seconds_total{cpu_mode}`, `dotnet_thread_pool_thread_count`, `dotnet_thread_pool_queue_length`,
                `dotnet_thread_pool_work_item_count_total`, `dotnet_monitor_lock_contentions_total` and `dotnet_exceptions_total{error_type}`.
                """)
            .Produces<string>(StatusCodes.Status200OK, "text/plain");

        app.MapPost("/models/reload", ReloadAllAsync)
            .WithTags("Models")
            .WithName("ReloadModels")
            .WithSummary("Rescan the model root now, for every model (administrative)")
            .WithDescription("""
                What POST /models/{name}/reload does, answered for every model: the versions this rescan loaded and unloaded,
                every folder refused as it stands, and the version of each model served now. For publishing a model whose
                name is not known to the caller, or after changing several models at once. Needs the header `X-Api-Key`
                with Security:AdminApiKey; without a configured key this endpoint is disabled (403).
                """)
            .Produces<ReloadAllResponse>()
            .RequireAdminKey();

        app.MapPost("/models/{name}/reload", ReloadAsync)
            .WithTags("Models")
            .WithName("ReloadModel")
            .WithSummary("Rescan the model root now (administrative)")
            .WithDescription("""
                Loads version folders that appeared under the model root (each verified and warmed up before it is served),
                stops serving removed ones, and answers what changed and which version of the model is served now. The service
                also does this by itself when the folder changes and every Models:RescanIntervalSeconds. Requests already
                running finish on the version they started with. Needs the header `X-Api-Key` with Security:AdminApiKey;
                without a configured key this endpoint is disabled (403).
                """)
            .Produces<ReloadResponse>()
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ValidateModelRouteValues()
            .RequireAdminKey();
        return app;
    }

    internal static async Task<Ok<ReloadAllResponse>> ReloadAllAsync(ModelRegistry registry, SettleClock clock, IHostApplicationLifetime lifetime)
    {
        var result = await registry.RescanAsync(lifetime.ApplicationStopping);
        var catalog = registry.Catalog;
        // Refusals as they stand, as for one model: the watcher may have refused a new folder a moment before.
        return TypedResults.Ok(new ReloadAllResponse(catalog.Families.Values.OrderBy(f => f.Name, StringComparer.Ordinal).Select(f => $"{f.Name}@{f.Served.Version}").ToArray(),
            catalog.DefaultModel, result.Loaded, result.Removed,
            catalog.Refused.Select(r => RefusedBundleResponse.Of(r, registry.Root)).ToArray(),
            Settling(registry, catalog, clock, _ => true)));
    }

    /// <summary>
    /// The folders that do not load yet while their files change (of the models <paramref name="of"/> picks), as
    /// answered; not one that <paramref name="catalog"/> lists as refused or loaded (a scan of the watcher's, after this
    /// rescan, may have decided it).
    /// </summary>
    private static SettlingBundleResponse[] Settling(ModelRegistry registry, ModelCatalog catalog, SettleClock clock, Func<string, bool> of)
    {
        var now = clock.UtcNow;
        var decided = catalog.Refused.Select(r => r.Directory).Concat(catalog.Served.Keys.Select(b => b.Directory)).ToHashSet(StringComparer.Ordinal);
        return registry.Settling.Where(folder => of(ModelRegistry.ModelOf(folder.Directory)) && !decided.Contains(folder.Directory))
            .Select(folder => SettlingBundleResponse.Of(folder, registry.Root, now)).ToArray();
    }

    /// <param name="name">Model name, e.g. <c>fashion-mnist</c>.</param>
    internal static async Task<Ok<ReloadResponse>> ReloadAsync(string name, ModelRegistry registry, SettleClock clock, IHostApplicationLifetime lifetime)
    {
        var result = await registry.RescanAsync(lifetime.ApplicationStopping);
        var catalog = registry.Catalog;
        // As they stand, not only those this rescan refused: the watcher may have refused a new folder a moment before.
        // Its version folders, and its model folder or the root when they cannot be read.
        var modelFolder = Path.Combine(registry.Root, name);
        var refused = catalog.Refused.Where(r => ModelRegistry.ModelOf(r.Directory) == name
            || r.Directory == modelFolder || r.Directory == registry.Root).ToArray();
        var settling = Settling(registry, catalog, clock, model => model == name);
        if (!catalog.Families.ContainsKey(name) && (refused.Length > 0 || settling.Length > 0))
        {
            // A model none of whose versions loaded: say why, rather than only that it is not there.
            // Reasons are sentences of their own; inside the parentheses their full stops would close twice: ".)."
            var why = refused.Select(r => $"{Path.GetFileName(r.Directory)}: {r.Reason.TrimEnd('.')}").Concat(settling.Select(folder =>
                $"{Path.GetFileName(folder.Directory)}: does not load yet ({folder.Reason.TrimEnd('.')}), and its files changed less than Models:SettleSeconds ago, perhaps still being copied: it is looked at again in about {folder.SettlesInSeconds} s"));
            var what = settling.Length == 0 ? "every version of it was refused" : refused.Length == 0 ? "no version of it loads yet" : "no version of it loads";
            throw new ProblemException(ProblemCatalog.ModelNotFound, $"No model named '{name}' is loaded: {what} ({string.Join("; ", why)}).");
        }
        var family = catalog.Family(name);
        bool Mine(string reference) => reference.StartsWith(name + "@", StringComparison.Ordinal);
        return TypedResults.Ok(new ReloadResponse(name, family.Served.Version, family.Versions.Select(v => v.Version).ToArray(),
            result.Loaded.Where(Mine).ToArray(), result.Removed.Where(Mine).ToArray(),
            refused.Select(r => RefusedBundleResponse.Of(r, registry.Root)).ToArray(), settling));
    }

    /// <summary>
    /// 400 for a <c>name</c> or <c>version</c> route value that could not be a folder name (e.g. '..', slashes, an absolute
    /// path), before any lookup: no request can name a file outside the model root.
    /// </summary>
    public static TBuilder ValidateModelRouteValues<TBuilder>(this TBuilder builder) where TBuilder : IEndpointConventionBuilder => builder
        .AddEndpointFilter(async (context, next) =>
        {
            foreach (var key in (string[])["name", "version"])
            {
                if (context.HttpContext.Request.RouteValues.TryGetValue(key, out var value) && !ModelSelector.IsValidName(value as string))
                {
                    return ProblemCatalog.Problem(ProblemCatalog.InvalidParameter,
                        $"The {key} '{value}' is not valid: {ModelSelector.NameRule}.");
                }
            }
            return await next(context);
        });
}
