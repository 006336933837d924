namespace ProtoPNet.Service.Models;

/// <summary>
/// The clock by which the scanner times how long a copied folder's files have been still (Models:SettleSeconds), and
/// by which the watcher and the reload answers reckon how far off that moment is. A clock of its own, not the service's
/// <see cref="TimeProvider"/>, so that a test can move it without moving the metrics' forgetting or the training jobs'
/// retention with it.
/// </summary>
public sealed class SettleClock(TimeProvider time)
{
    public static SettleClock System { get; } = new(TimeProvider.System);

    public DateTime UtcNow => time.GetUtcNow().UtcDateTime;
}
