using ProtoPNet.Service.Problems;

namespace ProtoPNet.Service.Serving;

/// <summary>
/// How long a request body may take to arrive, in all (<c>Classify:UploadReadTimeout</c>). Kestrel's own floor is a
/// rate averaged over the whole body (240 bytes a second), so a client that sends 20 MB at once and then stalls keeps
/// its connection, and the bytes it sent in the service's buffer budget, for about a day; past the deadline the read
/// stops, the bytes are given back and the answer is 408, on a connection that then closes.
/// </summary>
public static class BodyDeadline
{
    public static async Task<T> ReadAsync<T>(HttpRequest request, Func<CancellationToken, Task<T>> read, TimeSpan timeout, CancellationToken requestAborted)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(requestAborted);
        deadline.CancelAfter(timeout);
        try
        {
            return await read(deadline.Token);
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested && !requestAborted.IsCancellationRequested)
        {
            // The body's read was cancelled halfway, which leaves Kestrel's body reader mid-read: it cannot read the rest
            // of the body off the connection to keep that alive. The connection closes once the answer is sent, and the
            // answer says so (Connection: close); Kestrel's own error line about it is left out of the log
            // (LoggingExtensions.IsDrainOfAStoppedBody).
            request.HttpContext.Features.Get<Microsoft.AspNetCore.Connections.Features.IConnectionLifetimeNotificationFeature>()?.RequestClose();
            throw new ProblemException(ProblemCatalog.RequestTimeout,
                $"The request body did not arrive within {timeout:c} (Classify:UploadReadTimeout): send it faster, or fewer or smaller images per request.");
        }
    }
}
