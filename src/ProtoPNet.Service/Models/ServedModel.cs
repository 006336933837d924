using ProtoPNet.Inference.Bundles;
using ProtoPNet.Inference.Runtime;
using ProtoPNet.Service.Serving;

namespace ProtoPNet.Service.Models;

/// <summary>
/// A loaded model version as the registry serves it: the bundle, its execution strategy and batcher, and a count of the requests using it.
/// When a reload retires it, it is disposed as soon as the last request using it has finished (never under one).
/// </summary>
public sealed class ServedModel
{
    private readonly Lock _lock = new();
    private int _leases;
    private bool _retired;
    private bool _disposed;

    private readonly ILogger _logger;
    private readonly ServiceMetrics _metrics;

    public ServedModel(ModelBundle bundle, ExecutionStrategy strategy, BatchingOptions options, ServiceMetrics metrics, InferenceRequests requests,
        ILogger logger)
    {
        Bundle = bundle;
        Strategy = strategy;
        Batcher = new InferenceBatcher(bundle, strategy, options, metrics, requests);
        _logger = logger;
        _metrics = metrics;
        metrics.Serving(bundle.Name, bundle.Version);
    }

    public ModelBundle Bundle { get; }

    /// <summary>How this version's network runs are shaped (batch size, concurrent runs, threads) and how that was chosen.</summary>
    public ExecutionStrategy Strategy { get; }

    public InferenceBatcher Batcher { get; }

    /// <summary>True once retired and drained: session and batcher are gone.</summary>
    public bool IsDisposed
    {
        get { lock (_lock) return _disposed; }
    }

    /// <summary>A lease that keeps this version alive until disposed; null when it has been retired meanwhile.</summary>
    public ModelLease? TryAcquire()
    {
        lock (_lock)
        {
            if (_retired) return null;
            _leases++;
        }
        return new ModelLease(this);
    }

    internal void Release()
    {
        bool dispose;
        lock (_lock)
        {
            _leases--;
            dispose = _retired && _leases == 0 && !_disposed;
            if (dispose) _disposed = true;
        }
        if (dispose) DisposeNow();
    }

    /// <summary>No new lease is given; the bundle is disposed when the running requests have finished.</summary>
    public void Retire()
    {
        bool dispose;
        lock (_lock)
        {
            _retired = true;
            dispose = _leases == 0 && !_disposed;
            if (dispose) _disposed = true;
        }
        if (dispose) DisposeNow();
    }

    private void DisposeNow()
    {
        Batcher.Dispose();
        Bundle.Dispose();
        _metrics.Unloaded(Bundle.Name, Bundle.Version);
        // The retirement's other half: its requests have finished and its memory is given back.
        _logger.LogInformation("Model {Model}@{Version} is unloaded: no request uses it any more", Bundle.Name, Bundle.Version);
    }
}

/// <summary>One request's hold on a model version: the version stays loaded until every lease on it is disposed.</summary>
public sealed class ModelLease(ServedModel served) : IDisposable
{
    private int _released;

    public ModelBundle Bundle => served.Bundle;
    public InferenceBatcher Batcher => served.Batcher;

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _released, 1) == 0) served.Release();
    }
}
