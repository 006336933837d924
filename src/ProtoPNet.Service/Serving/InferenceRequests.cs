using System.Diagnostics;

namespace ProtoPNet.Service.Serving;

/// <summary>
/// The requests that run a network (POST /classify, /classify/batch, /classify/card, v2 infer) in progress in this
/// process, from the moment their endpoint is chosen until their answer is written. Whether a request is the only one
/// decides two things: a small <c>/classify</c> stays on the socket thread that read it (Classifying/InlineWork.cs; under
/// load the pool's threads are awake anyway and spread the work better), and, with no two in progress together for a
/// while (<see cref="Alone"/>), a single image runs on the model's session for lone runs, whose threads would share the
/// cores with another request (<see cref="InferenceBatcher"/>). One instance per service (not a static field), so that services
/// started side by side in one process (the tests) do not count each other's requests. Counted by
/// <see cref="InferenceRequestCounting.UseInferenceRequestCount"/> for the endpoints marked
/// <see cref="InferenceRequestCounting.CountedAsInference{TBuilder}"/>.
/// </summary>
public sealed class InferenceRequests(TimeSpan loneQuiet)
{
    private readonly long _loneQuietTicks = (long)(loneQuiet.TotalSeconds * Stopwatch.Frequency);
    private int _inProgress;
    /// <summary>The <see cref="Stopwatch"/> timestamp from which a request may be alone: the quiet period after two were last together.</summary>
    private long _aloneFrom;
    private int _cutOffByShutdown;
    private int _serverClosing;
    private int _finishedAfterClosing;

    public int InProgress => Volatile.Read(ref _inProgress);

    /// <summary>
    /// Whether the asking request (counted in <see cref="InProgress"/>) is the only one, and no two have been in progress
    /// together for the quiet period (<see cref="BatchingOptions.LoneQuietMs"/>): a lone run may then take every core.
    /// </summary>
    public bool Alone => InProgress <= 1 && Stopwatch.GetTimestamp() >= Volatile.Read(ref _aloneFrom);

    /// <summary>Requests whose connection a shutdown closed before they ended (the shutdown's time ran out).</summary>
    public int CutOffByShutdown => Volatile.Read(ref _cutOffByShutdown);

    /// <summary>
    /// Whether the server has stopped accepting (a shutdown past its drain, Shutdown:DrainSeconds): from then on a
    /// request whose connection goes was cut off by the shutdown. During the drain a client that leaves is one that left.
    /// </summary>
    public bool ServerClosing => Volatile.Read(ref _serverClosing) == 1;

    /// <summary>
    /// Requests that ended normally after the server stopped accepting: those it waited for, including any still unread
    /// on their connections at that moment (not yet counted <see cref="InProgress"/> where they waited for a thread).
    /// </summary>
    public int FinishedAfterClosing => Volatile.Read(ref _finishedAfterClosing);

    /// <summary>Said by the shutdown once its drain is over, as the server stops accepting.</summary>
    public void ServerCloses() => Volatile.Write(ref _serverClosing, 1);

    public void Enter()
    {
        if (Interlocked.Increment(ref _inProgress) > 1) Volatile.Write(ref _aloneFrom, Stopwatch.GetTimestamp() + _loneQuietTicks);
    }

    public void Leave()
    {
        if (ServerClosing) Interlocked.Increment(ref _finishedAfterClosing);
        Interlocked.Decrement(ref _inProgress);
    }

    /// <summary>Leaves as a request that a shutdown cut off.</summary>
    public void LeaveCutOff()
    {
        Interlocked.Increment(ref _cutOffByShutdown);
        Interlocked.Decrement(ref _inProgress);
    }
}

public static class InferenceRequestCounting
{
    /// <summary>Marks an endpoint whose requests run a network: they count in <see cref="InferenceRequests"/>.</summary>
    public static TBuilder CountedAsInference<TBuilder>(this TBuilder endpoint) where TBuilder : IEndpointConventionBuilder =>
        endpoint.WithMetadata(InferenceEndpoint.Instance);

    /// <summary>Counts the requests of marked endpoints while they are in progress (after routing has chosen the endpoint).</summary>
    public static WebApplication UseInferenceRequestCount(this WebApplication app)
    {
        var requests = app.Services.GetRequiredService<InferenceRequests>();
        app.Use(async (context, next) =>
        {
            if (context.GetEndpoint()?.Metadata.GetMetadata<InferenceEndpoint>() is null)
            {
                await next(context);
                return;
            }
            requests.Enter();
            try
            {
                await next(context);
            }
            finally
            {
                if (RequestMetrics.CutOffByShutdown(context, requests)) requests.LeaveCutOff();
                else requests.Leave();
            }
        });
        return app;
    }

    private sealed class InferenceEndpoint
    {
        public static readonly InferenceEndpoint Instance = new();
    }
}
