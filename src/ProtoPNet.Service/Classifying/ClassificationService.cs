using System.Diagnostics;
using Microsoft.Extensions.Options;
using ProtoPNet.Inference.Bundles;
using ProtoPNet.Inference.Explanation;
using ProtoPNet.Inference.Preprocessing;
using ProtoPNet.Inference.Runtime;
using ProtoPNet.Service.Models;
using ProtoPNet.Service.Problems;
using ProtoPNet.Service.Serving;
using Serilog;

namespace ProtoPNet.Service.Classifying;

/// <summary>
/// The classification use case behind every inference endpoint: check the request against the model version it names,
/// read the uploads, lease that version, decode the uploads and write them into the network's input, run them through the version's batcher (together with
/// other requests' images), explain, and report whatever goes wrong as a problem (<see cref="ProblemException"/>).
/// The endpoints only turn the request into a <see cref="ClassifyRequest"/> and the answer into their own format.
/// </summary>
public sealed class ClassificationService(
    ModelRegistry registry, Classifier classifier, PreprocessingGate preprocessing, BufferBudget buffers, SpoolBudget spool, IOptions<ImageLimits> imageLimits,
    IOptions<ClassifyOptions> classifyOptions, InferenceRequests inferenceRequests, ServiceMetrics metrics, IDiagnosticContext diagnostics)
{
    /// <summary>
    /// Classifies and explains the images uploaded with <paramref name="http"/>. Problems with the request as a whole
    /// (model, parameters, upload, overload) are thrown; an image that cannot be decoded is reported in its item, so one
    /// bad image of a batch does not fail the others. The answer is disposed when the response has been sent (it holds the
    /// model version until <see cref="ClassifiedUploads.ReleaseModel"/>, and the pixels to draw on).
    /// </summary>
    public async Task<ClassifiedUploads> ClassifyAsync(HttpRequest http, ClassifyRequest request, CancellationToken cancellationToken)
    {
        // The model and parameters are checked against the version the request names now, before its upload is read, so
        // mistakes are answered at once; the version is leased only once the upload is in (a slow client holds none).
        var named = registry.Find(request.Model);
        Name(http.HttpContext, named);
        _ = CheckedExplainOptions(named, request);   // refused now if the parameters do not fit the model; made again for the version leased
        if (request.Batch && !UploadReader.IsMultipart(http.ContentType))
        {
            throw new ProblemException(ProblemCatalog.UnsupportedMediaType,
                (string.IsNullOrEmpty(http.ContentType) ? "The request has no Content-Type" : $"Content-Type '{http.ContentType}' is not accepted here") +
                ": send multipart/form-data with one file field 'image' per image.");
        }
        ModelLease? lease = null;
        PreparedImages? prepared = null;
        // The pixels kept to draw on, and the picture drawn at a time, are in the budget from their decoding until the answer is disposed.
        var kept = buffers.Open();
        try
        {
            var total = new Stopwatch();
            (lease, prepared) = await ReadAndDecodeAsync(http, request, kept, total, cancellationToken);
            var options = CheckedExplainOptions(lease.Bundle, request);
            var outcomes = await RunAndExplainAsync(lease, prepared, options, request.Verify, total, cancellationToken);
            diagnostics.Set("PredictedClass", string.Join(",", outcomes.Select(o => o.Classification?.Prediction.Label ?? "-")));
            var answer = new ClassifiedUploads(lease, prepared, kept, outcomes);
            // Disposed once the response is sent: heatmaps are drawn as it is written (ReleaseModel lets the version go before).
            http.HttpContext.Response.RegisterForDispose(answer);
            return answer;
        }
        catch
        {
            prepared?.Dispose();
            kept.Dispose();
            lease?.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Reads the uploads (their bytes held in the service's <see cref="BufferBudget"/>), leases the model version, waits
    /// for a turn to decode and decodes them; <paramref name="total"/> starts once they are read. A method of its own so
    /// that the upload bytes are unreachable once it returns: they are not kept while the images wait for the network.
    /// </summary>
    private async Task<(ModelLease Lease, PreparedImages Prepared)> ReadAndDecodeAsync(HttpRequest http, ClassifyRequest request,
        BufferBudget.Hold kept, Stopwatch total, CancellationToken cancellationToken)
    {
        using var held = buffers.OpenAlongside(kept);   // "overloaded" when the budget is spent, until the images are decoded
        var images = await BodyDeadline.ReadAsync(http, deadline => UploadReader.ReadAsync(http, imageLimits.Value,
            request.Batch ? classifyOptions.Value.MaxBatchImages : 1, held, spool, deadline), classifyOptions.Value.UploadReadTimeout, cancellationToken);
        total.Start();
        var lease = Lease(http.HttpContext, request.Model);
        try
        {
            // Only heatmaps and the card draw on the decoded pixels (up to Classify:MaxDrawnPixels): otherwise they are freed image by image.
            var keptPixels = request.Heatmaps != HeatmapUse.None ? classifyOptions.Value.MaxDrawnPixels : 0;
            if (images.Count > 1) return (lease, await PrepareByTurnsAsync(lease, images, request.Heatmaps, kept, keptPixels, cancellationToken));
            using (await preprocessing.EnterAsync(cancellationToken))   // "overloaded" when too many wait, or too long
            {
                // On the socket thread that read it, or handed a turn on another's (Hosting/InlineScheduling.cs): only
                // small work stays there. The upload is read: nothing more arrives to bring the request back.
                if (!Thread.CurrentThread.IsThreadPoolThread && !InlineWork.IsSmall(images, request, lease.Batcher, inferenceRequests.InProgress))
                {
                    await PoolHop.OffSocketThread();
                }
                var drawing = new DrawingMemory(kept, request.Heatmaps, lease.Bundle.Session.MapHeight);
                return (lease, classifier.Prepare(lease.Bundle, images, keptPixels, drawing.Keep));
            }
        }
        catch
        {
            lease.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A request of several images decodes them each in a turn of its own ("overloaded" when too many wait, or too long),
    /// off the socket thread: one turn for all of them let a batch of large images hold a core while single requests
    /// queued behind it (two batches of 12 large images made a lone request wait 11 s, for a 503).
    /// </summary>
    private async Task<PreparedImages> PrepareByTurnsAsync(ModelLease lease, IReadOnlyList<ReadOnlyMemory<byte>> images, HeatmapUse heatmaps,
        BufferBudget.Hold kept, long keptPixels, CancellationToken cancellationToken)
    {
        var drawing = new DrawingMemory(kept, heatmaps, lease.Bundle.Session.MapHeight);
        var preparation = classifier.StartPreparation(lease.Bundle, images.Count, keptPixels, drawing.Keep);
        try
        {
            for (var i = 0; i < images.Count; i++)
            {
                using (await preprocessing.EnterAsync(cancellationToken))
                {
                    await PoolHop.OffSocketThread();   // a turn may be handed over on a socket thread (Hosting/InlineScheduling.cs)
                    preparation.Add(i, images[i]);
                }
            }
        }
        catch
        {
            preparation.Abandon();
            throw;
        }
        return preparation.Finish();
    }

    /// <summary>
    /// Runs an input tensor the caller made (the Open Inference Protocol) through the model's batcher, as uploads are.
    /// <paramref name="writeInput"/> writes the caller's tensor for the leased model, at most <see cref="ClassifyOptions.MaxBatchImages"/>
    /// rows, into a buffer from <see cref="BundleSession.RentBuffer"/>, and says whether the similarity maps are wanted
    /// (rows x M x H x W values, fetched only then); it throws the problem for a bad tensor (having returned its buffer).
    /// Dispose the answer when done with its outputs.
    /// </summary>
    public async Task<TensorRun> RunTensorAsync(HttpContext http, ModelSelector model, Func<ModelBundle, int, TensorInput> writeInput,
        CancellationToken cancellationToken)
    {
        var lease = Lease(http, model);
        try
        {
            var (input, rows, withMaps) = writeInput(lease.Bundle, classifyOptions.Value.MaxBatchImages);
            try
            {
                return new TensorRun(lease, await RunAsync(lease, input, rows, cancellationToken, withMaps), rows);
            }
            finally
            {
                BundleSession.ReturnBuffer(input);
            }
        }
        catch
        {
            lease.Dispose();
            throw;
        }
    }

    /// <summary>Leases the model version and names it in the request's log line and metrics.</summary>
    private ModelLease Lease(HttpContext http, ModelSelector model)
    {
        var lease = registry.Lease(model);
        Name(http, lease.Bundle);
        return lease;
    }

    /// <summary>Names the model version in the request's log line and metrics.</summary>
    private void Name(HttpContext http, ModelBundle bundle)
    {
        diagnostics.Set("Model", $"{bundle.Name}@{bundle.Version}");
        RequestMetrics.SetModel(http, bundle);
    }

    /// <summary>
    /// The request's explanation options for this model; throws a 400 problem for a parameter outside the model (a class
    /// it does not have) or beyond the configured bounds on the work one request may ask for.
    /// </summary>
    private ExplainOptions CheckedExplainOptions(ModelBundle bundle, ClassifyRequest request)
    {
        var (topClasses, topPrototypes, explainClass) = (request.TopClasses, request.TopPrototypes, request.ExplainClass);
        if (topClasses is < 0) throw InvalidParameter($"topClasses must be 0 or more; it is {topClasses}.");
        if (topPrototypes is < 0) throw InvalidParameter($"topPrototypes must be 0 or more; it is {topPrototypes}.");
        if (explainClass is { } k && (k < 0 || k >= bundle.ClassCount))
        {
            throw InvalidParameter($"explainClass {k} is not a class of {bundle.Name}@{bundle.Version} (0 to {bundle.ClassCount - 1}).");
        }
        // Every explained prototype costs an upsampled map; every heatmap sent back a full-size picture. The default
        // (5) is held to the operator's limits; a number asked for beyond them is refused below.
        var limits = classifyOptions.Value;
        var defaultTop = Math.Min(ClassifyOptions.DefaultTopPrototypes, limits.MaxTopPrototypes);
        if (request.Heatmaps == HeatmapUse.Sent) defaultTop = Math.Min(defaultTop, limits.MaxHeatmapPrototypes);
        if (request.Verify) defaultTop = Math.Min(defaultTop, limits.MaxVerifiedPrototypes);
        var options = new ExplainOptions(Math.Min(topClasses ?? ClassifyOptions.DefaultTopClasses, bundle.ClassCount), Math.Min(topPrototypes ?? defaultTop, bundle.PrototypeCount),
            explainClass, request.Heatmaps != HeatmapUse.None);
        if (topPrototypes > limits.MaxTopPrototypes)
        {
            throw InvalidParameter($"topPrototypes is {topPrototypes}; at most {limits.MaxTopPrototypes} prototypes are explained per image (Classify:MaxTopPrototypes).");
        }
        if (request.Heatmaps == HeatmapUse.Sent && options.TopPrototypes > limits.MaxHeatmapPrototypes)
        {
            throw InvalidParameter($"heatmaps=png with topPrototypes {options.TopPrototypes}: at most {limits.MaxHeatmapPrototypes} heatmaps per image (Classify:MaxHeatmapPrototypes); ask for fewer prototypes or heatmaps=none.");
        }
        if (request.Verify && options.TopPrototypes > limits.MaxVerifiedPrototypes)
        {
            throw InvalidParameter($"verify=true with topPrototypes {options.TopPrototypes}: at most {limits.MaxVerifiedPrototypes} boxes are checked per image (Classify:MaxVerifiedPrototypes); ask for fewer prototypes or leave verify out.");
        }
        return options;
    }

    private static ProblemException InvalidParameter(string detail) => new(ProblemCatalog.InvalidParameter, detail);

    /// <summary>
    /// Runs the prepared images through the batcher and explains them; with <paramref name="verify"/>, checks every
    /// explained prototype's box with one more run of masked copies (<see cref="EvidenceCheck"/>).
    /// </summary>
    private async Task<IReadOnlyList<BatchItemOutcome>> RunAndExplainAsync(ModelLease lease, PreparedImages prepared, ExplainOptions options,
        bool verify, Stopwatch total, CancellationToken cancellationToken)
    {
        var bundle = lease.Bundle;
        if (prepared.RowCount == 0) return classifier.Explain(bundle, prepared, null, 0, options, 0, total);
        IReadOnlyList<BatchItemOutcome> outcomes;
        EvidenceCheck? check = null;
        var verifyWatch = new Stopwatch();
        try
        {
            using (var run = await RunAsync(lease, prepared.Input, prepared.RowCount, cancellationToken))
            {
                outcomes = classifier.Explain(bundle, prepared, run.Outputs, run.FirstRow, options, run.InferenceMs / run.BatchSize, total);
                verifyWatch.Start();
                // The masked copies are written while the images' own outputs (their probabilities) are at hand.
                if (verify) check = EvidenceCheck.Prepare(bundle, prepared, run.Outputs, run.FirstRow, outcomes);
            }
            if (check is not null)
            {
                // Only the masked copies' logits are read: their similarity maps are not fetched.
                using var masked = await RunAsync(lease, check.Input, check.RowCount, cancellationToken, withMaps: false);
                outcomes = check.Apply(outcomes, masked.Outputs, masked.FirstRow, verifyWatch.Elapsed.TotalMilliseconds / prepared.RowCount);
            }
        }
        finally
        {
            check?.Dispose();
        }
        var tags = new[] { ServiceMetrics.Tag("model", bundle.Name), ServiceMetrics.Tag("version", bundle.Version) };
        foreach (var outcome in outcomes)
        {
            if (outcome.Classification is { } classification) metrics.ExplanationDuration.Record(classification.Timings.ExplainMs / 1000, tags);
        }
        return outcomes;
    }

    /// <summary>One network run through the version's batcher; a full queue or a request that waited too long is "overloaded" (503).</summary>
    private static async Task<BatchRun> RunAsync(ModelLease lease, float[] input, int rows, CancellationToken cancellationToken, bool withMaps = true)
    {
        try
        {
            return await lease.Batcher.RunAsync(input, rows, cancellationToken, withMaps);
        }
        catch (Exception exception) when (exception is QueueFullException or QueueTimeoutException)
        {
            throw new ProblemException(ProblemCatalog.Overloaded, exception.Message);
        }
    }
}
