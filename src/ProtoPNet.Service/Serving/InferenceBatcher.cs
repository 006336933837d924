using System.Diagnostics;
using System.Threading.Channels;
using ProtoPNet.Inference.Bundles;
using ProtoPNet.Inference.Runtime;

namespace ProtoPNet.Service.Serving;

/// <summary>
/// A request's rows in a finished network run: the batch's outputs, where its rows start, and what it cost. The outputs
/// are pooled and shared by the batch's requests: dispose the run when done with them, and the last one returns them.
/// </summary>
public sealed class BatchRun(SharedOutputs shared, int firstRow, int batchSize, double queueMs, double inferenceMs, bool alone = false) : IDisposable
{
    private int _disposed;

    public NetworkOutputs Outputs => shared.Outputs;
    public int FirstRow { get; } = firstRow;
    public int BatchSize { get; } = batchSize;
    public double QueueMs { get; } = queueMs;
    public double InferenceMs { get; } = inferenceMs;

    /// <summary>Whether it ran on the bundle's session for single images (<see cref="ModelBundle.LoneSession"/>).</summary>
    public bool Alone { get; } = alone;

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0) shared.Release();
    }
}

/// <summary>One batch's outputs with a count of the requests still reading them.</summary>
public sealed class SharedOutputs(NetworkOutputs outputs, int readers)
{
    private int _readers = readers;

    public NetworkOutputs Outputs { get; } = outputs;

    public void Release()
    {
        if (Interlocked.Decrement(ref _readers) == 0) Outputs.Dispose();
    }
}

/// <summary>The queue is full: answer 503 with Retry-After at once.</summary>
public sealed class QueueFullException(string message) : Exception(message);

/// <summary>The request waited in the queue longer than <see cref="BatchingOptions.QueueTimeoutMs"/>: answer 503.</summary>
public sealed class QueueTimeoutException(string message) : Exception(message);

/// <summary>
/// The dynamic batcher of one model version (Triton's dynamic batching): requests put their preprocessed rows in a
/// bounded queue; the strategy's <see cref="ExecutionStrategy.ConcurrentRuns"/> workers each take what is queued, up to
/// <see cref="ExecutionStrategy.MaxBatchSize"/> images, waiting at most <see cref="BatchingOptions.MaxQueueDelayMs"/> for more,
/// copy the rows into one pooled input buffer and run the network once. A request whose caller went away, or that waited
/// past its deadline, is dropped before it reaches the network.
/// </summary>
public sealed class InferenceBatcher : IDisposable
{
    private readonly ModelBundle _bundle;
    private readonly BatchingOptions _options;
    private readonly int _maxBatchSize;
    private readonly ServiceMetrics _metrics;
    private readonly Channel<BatchRequest> _queue = Channel.CreateUnbounded<BatchRequest>(new UnboundedChannelOptions { SingleWriter = false });
    private readonly KeyValuePair<string, object?>[] _tags;
    private readonly Task[] _workers;
    /// <summary>One permit per concurrent run: taken by a worker for its batch, or by a request that runs at once (<see cref="TryRunNow"/>).</summary>
    private readonly SemaphoreSlim _runSlots;
    private readonly InferenceRequests _requests;
    private readonly int _concurrentRuns;
    private int _queuedImages;
    private double _runMsPerImage = double.NaN;

    /// <param name="requests">The service's inference requests in progress, the asking one included.</param>
    public InferenceBatcher(ModelBundle bundle, ExecutionStrategy strategy, BatchingOptions options, ServiceMetrics metrics,
        InferenceRequests requests)
    {
        _bundle = bundle;
        _requests = requests;
        _options = options;
        _maxBatchSize = strategy.MaxBatchSize;
        _metrics = metrics;
        _tags = [ServiceMetrics.Tag("model", bundle.Name), ServiceMetrics.Tag("version", bundle.Version)];
        _concurrentRuns = strategy.ConcurrentRuns;
        _runSlots = new SemaphoreSlim(strategy.ConcurrentRuns, strategy.ConcurrentRuns);
        _workers = Enumerable.Range(0, strategy.ConcurrentRuns).Select(_ => Task.Run(RunWorkerAsync)).ToArray();
    }

    /// <summary>Images waiting for a network run.</summary>
    public int QueueDepth => Volatile.Read(ref _queuedImages);

    /// <summary>
    /// Milliseconds a recent run took per image (a moving average over runs, each weighted a fifth); NaN before the
    /// first. Whether a small request may stay on its socket thread depends on it (Hosting/InlineScheduling.cs).
    /// </summary>
    public double RunMsPerImage => Volatile.Read(ref _runMsPerImage);

    /// <summary>
    /// Queues <paramref name="rows"/> images stored in the first elements of <paramref name="input"/> and waits for their run.
    /// The buffer stays the caller's: it is read only while the request is being run, and this method never returns while it is.
    /// Without <paramref name="withMaps"/> the request does not need the similarity maps: a batch of such requests alone
    /// is run without fetching them (the largest output: M x h x w values an image).
    /// </summary>
    public async Task<BatchRun> RunAsync(float[] input, int rows, CancellationToken aborted, bool withMaps = true)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(rows, 1);
        aborted.ThrowIfCancellationRequested();
        if (TryRunNow(input, rows, withMaps) is { } now) return now;
        var queued = Interlocked.Add(ref _queuedImages, rows);
        // A request larger than the whole queue is still taken when the queue is empty, so it can be served at all.
        if (queued > _options.MaxQueueSize && queued != rows)
        {
            Interlocked.Add(ref _queuedImages, -rows);
            throw new QueueFullException(
                $"{_bundle.Name}@{_bundle.Version} is overloaded: {queued - rows} images are queued (limit {_options.MaxQueueSize}). Retry shortly.");
        }
        var request = new BatchRequest(input, rows, aborted, withMaps);
        if (!_queue.Writer.TryWrite(request))
        {
            Interlocked.Add(ref _queuedImages, -rows);
            throw new QueueFullException($"{_bundle.Name}@{_bundle.Version} is being replaced or shut down. Retry shortly.");
        }

        try
        {
            return await request.Completion.Task.WaitAsync(TimeSpan.FromMilliseconds(_options.QueueTimeoutMs), aborted);
        }
        catch (Exception exception) when (exception is TimeoutException or OperationCanceledException)
        {
            // Still queued: withdraw it, so no worker ever reads the buffer. Already taken: wait for its run to end
            // (a run is short), because the caller reuses the buffer as soon as this returns.
            if (!request.TryWithdraw()) return await request.Completion.Task;
            if (exception is TimeoutException)
            {
                throw new QueueTimeoutException(
                    $"{_bundle.Name}@{_bundle.Version} is overloaded: the request waited {_options.QueueTimeoutMs} ms in the queue without being run. Retry shortly.");
            }
            throw;
        }
    }

    /// <summary>
    /// With nothing queued, no queue delay configured, a run free and no more inference requests in progress than runs
    /// (each could have a run of its own), the request runs on its own thread at once: no hand-off to a worker and back,
    /// which on a small model costs more than the network (two thread wake-ups). Under more load it is queued, so that
    /// the requests arriving while the runs are busy share the next one (a batch costs less per image). One image of
    /// a request alone (<see cref="InferenceRequests.Alone"/>: the only one in progress, and none beside another for a
    /// while) runs on the bundle's session for lone runs where it has one (more threads, which another request's
    /// decoding or run would have to share).
    /// </summary>
    private BatchRun? TryRunNow(float[] input, int rows, bool withMaps)
    {
        if (_options.MaxQueueDelayMs > 0 || rows > _maxBatchSize || Volatile.Read(ref _queuedImages) > 0 ||
            _requests.InProgress > _concurrentRuns || !_runSlots.Wait(0)) return null;
        try
        {
            // One image only: a batch would grow the lone session's memory arena to its size, for good.
            var session = _bundle.SessionFor(rows, alone: _requests.Alone);
            var started = Stopwatch.GetTimestamp();
            var outputs = session.Run(input, rows, withMaps);
            var inferenceMs = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            var run = new BatchRun(new SharedOutputs(outputs, 1), 0, rows, 0, inferenceMs, alone: session == _bundle.LoneSession);
            try
            {
                RecordRun(inferenceMs, rows);
                _metrics.QueueDuration.Record(0, _tags);
            }
            catch
            {
                run.Dispose();   // a metrics listener's fault: the outputs go back to their pool all the same
                throw;
            }
            return run;
        }
        finally
        {
            _runSlots.Release();
        }
    }

    /// <summary>A network run's measures: the estimate of <see cref="RunMsPerImage"/> and the metrics (its requests' queue times apart).</summary>
    private void RecordRun(double inferenceMs, int images)
    {
        Observe(inferenceMs, images);
        _metrics.InferenceDuration.Record(inferenceMs / 1000, _tags);
        _metrics.BatchSize.Record(images, _tags);
    }

    /// <summary>Moves <see cref="RunMsPerImage"/> towards this run's (concurrent runs may overwrite each other's step: it is an estimate).</summary>
    private void Observe(double inferenceMs, int images)
    {
        var perImage = inferenceMs / images;
        var recent = Volatile.Read(ref _runMsPerImage);
        Volatile.Write(ref _runMsPerImage, double.IsNaN(recent) ? perImage : recent + (perImage - recent) / 5);
    }

    private async Task RunWorkerAsync()
    {
        var reader = _queue.Reader;
        var batch = new List<BatchRequest>(_maxBatchSize);
        BatchRequest? carried = null;
        var deadlineTimeout = TimeSpan.FromMilliseconds(_options.QueueTimeoutMs);
        while (true)
        {
            batch.Clear();
            var images = 0;
            if (carried is not null)
            {
                batch.Add(carried);
                images = carried.Rows;
                carried = null;
            }
            else if (!await reader.WaitToReadAsync().ConfigureAwait(false))
            {
                return;
            }

            var waitUntil = Stopwatch.GetTimestamp() + (long)(_options.MaxQueueDelayMs * Stopwatch.Frequency / 1000.0);
            while (images < _maxBatchSize)
            {
                if (reader.TryRead(out var request))
                {
                    Interlocked.Add(ref _queuedImages, -request.Rows);
                    if (!Take(request, deadlineTimeout)) continue;
                    if (images > 0 && images + request.Rows > _maxBatchSize)
                    {
                        carried = request;
                        break;
                    }
                    batch.Add(request);
                    images += request.Rows;
                    continue;
                }
                var remaining = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), waitUntil);
                if (images == 0)
                {
                    // Every request read so far was withdrawn or expired: wait for the next one.
                    if (!await reader.WaitToReadAsync().ConfigureAwait(false)) return;
                    waitUntil = Stopwatch.GetTimestamp() + (long)(_options.MaxQueueDelayMs * Stopwatch.Frequency / 1000.0);
                    continue;
                }
                if (remaining <= TimeSpan.Zero) break;
                using var delay = new CancellationTokenSource(remaining);
                try
                {
                    if (!await reader.WaitToReadAsync(delay.Token).ConfigureAwait(false)) break;
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
            if (batch.Count == 0) continue;
            await _runSlots.WaitAsync().ConfigureAwait(false);
            try
            {
                Run(batch, images);
            }
            finally
            {
                _runSlots.Release();
            }
        }
    }

    /// <summary>Claims a queued request for a run, or completes it without one when its caller left or its deadline passed.</summary>
    private bool Take(BatchRequest request, TimeSpan deadline)
    {
        if (!request.TryStart()) return false;
        var waited = Stopwatch.GetElapsedTime(request.QueuedAt);
        if (request.Aborted.IsCancellationRequested)
        {
            request.Completion.TrySetCanceled(request.Aborted);
            return false;
        }
        if (waited > deadline)
        {
            request.Completion.TrySetException(new QueueTimeoutException(
                $"{_bundle.Name}@{_bundle.Version} is overloaded: the request waited {waited.TotalMilliseconds:0} ms in the queue. Retry shortly."));
            return false;
        }
        return true;
    }

    private void Run(List<BatchRequest> batch, int images)
    {
        // A caller that went away while the batch was forming is dropped now, before the network runs.
        foreach (var gone in batch.Where(r => r.Aborted.IsCancellationRequested).ToArray())
        {
            gone.Completion.TrySetCanceled(gone.Aborted);
            batch.Remove(gone);
            images -= gone.Rows;
        }
        if (batch.Count == 0) return;
        var session = _bundle.SessionFor(images, alone: false);
        var started = Stopwatch.GetTimestamp();
        foreach (var request in batch) request.QueueMs = Stopwatch.GetElapsedTime(request.QueuedAt, started).TotalMilliseconds;
        float[]? input = null;
        try
        {
            // One request alone runs straight from its own buffer; several are copied into one pooled buffer (renting it
            // may fail too: then this batch's requests get the error, and the worker goes on with the next batch), of
            // the rows the session runs, so that a session of one batch size pads it without another copy.
            input = batch.Count == 1 ? batch[0].Input : session.RentBuffer(session.RowsToRun(images));
            using var activity = ServiceMetrics.ActivitySource.StartActivity("inference batch");
            activity?.SetTag("model", _bundle.Name);
            activity?.SetTag("version", _bundle.Version);
            activity?.SetTag("batch_size", images);
            if (batch.Count > 1)
            {
                var offset = 0;
                foreach (var request in batch)
                {
                    var length = request.Rows * session.ImageElementCount;
                    Array.Copy(request.Input, 0, input, offset, length);
                    offset += length;
                }
            }
            var shared = new SharedOutputs(session.Run(input, images, batch.Any(r => r.WithMaps)), batch.Count);
            var inferenceMs = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            var firstRow = 0;
            foreach (var request in batch)
            {
                var run = new BatchRun(shared, firstRow, images, request.QueueMs, inferenceMs, alone: session == _bundle.LoneSession);
                // A request that can no longer take its result (it cannot: only the worker completes a started one) still releases it.
                if (!request.Completion.TrySetResult(run)) run.Dispose();
                firstRow += request.Rows;
            }
            // Recorded once every request holds its share of the outputs, so that a metrics listener's fault cannot strand them.
            RecordRun(inferenceMs, images);
            foreach (var request in batch) _metrics.QueueDuration.Record(request.QueueMs / 1000, _tags);
        }
        catch (Exception exception)
        {
            foreach (var request in batch) request.Completion.TrySetException(exception);
        }
        finally
        {
            if (batch.Count > 1 && input is not null) BundleSession.ReturnBuffer(input);
        }
    }

    /// <summary>Stops taking requests; called when the model version is retired and no lease on it remains.</summary>
    public void Dispose() => _queue.Writer.TryComplete();

    /// <summary>Workers end once the queue is completed and empty (for tests and orderly shutdown).</summary>
    public Task Completion => Task.WhenAll(_workers);

    private sealed class BatchRequest(float[] input, int rows, CancellationToken aborted, bool withMaps)
    {
        private const int Queued = 0, Started = 1, Withdrawn = 2;
        private int _state;

        public float[] Input { get; } = input;
        public int Rows { get; } = rows;
        public bool WithMaps { get; } = withMaps;
        public CancellationToken Aborted { get; } = aborted;
        public long QueuedAt { get; } = Stopwatch.GetTimestamp();
        public double QueueMs { get; set; }
        public TaskCompletionSource<BatchRun> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public bool TryStart() => Interlocked.CompareExchange(ref _state, Started, Queued) == Queued;
        public bool TryWithdraw() => Interlocked.CompareExchange(ref _state, Withdrawn, Queued) == Queued;
    }
}
