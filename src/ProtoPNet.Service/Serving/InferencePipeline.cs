using System.Diagnostics;
using ProtoPNet.Inference.Explanation;
using ProtoPNet.Service.Models;
using ProtoPNet.Service.Problems;

namespace ProtoPNet.Service.Serving;

/// <summary>
/// Uploaded images through a leased model version: decode and preprocess on the request's thread, run the network
/// through the version's batcher (together with other requests' images), explain on the request's thread.
/// </summary>
public sealed class InferencePipeline(Classifier classifier, ServiceMetrics metrics)
{
    public Classifier Classifier => classifier;

    /// <summary>Classifies the images; bad ones are reported per item.</summary>
    public async Task<IReadOnlyList<BatchItemOutcome>> ClassifyAsync(ModelLease lease, IReadOnlyList<ReadOnlyMemory<byte>> images,
        ExplainOptions options, CancellationToken cancellationToken)
    {
        var total = Stopwatch.StartNew();
        using var prepared = classifier.Prepare(lease.Bundle, images);
        return await ExplainAsync(lease, prepared, options, total, cancellationToken);
    }

    /// <summary>Runs prepared images through the batcher and explains them (the card endpoint keeps the decoded pixels for drawing).</summary>
    public async Task<IReadOnlyList<BatchItemOutcome>> ExplainAsync(ModelLease lease, PreparedImages prepared, ExplainOptions options,
        Stopwatch total, CancellationToken cancellationToken)
    {
        if (prepared.RowCount == 0) return classifier.Explain(lease.Bundle, prepared, null, 0, options, 0, total);
        BatchRun run;
        try
        {
            run = await lease.Batcher.RunAsync(prepared.Input, prepared.RowCount, cancellationToken);
        }
        catch (Exception exception) when (exception is QueueFullException or QueueTimeoutException)
        {
            throw new ProblemException(ProblemCatalog.Overloaded, exception.Message);
        }
        IReadOnlyList<BatchItemOutcome> outcomes;
        using (run) outcomes = classifier.Explain(lease.Bundle, prepared, run.Outputs, run.FirstRow, options, run.InferenceMs / run.BatchSize, total);
        var tags = new[] { ServiceMetrics.Tag("model", lease.Bundle.Name), ServiceMetrics.Tag("version", lease.Bundle.Version) };
        foreach (var outcome in outcomes)
        {
            if (outcome.Classification is { } classification) metrics.ExplanationDuration.Record(classification.Timings.ExplainMs / 1000, tags);
        }
        return outcomes;
    }
}
