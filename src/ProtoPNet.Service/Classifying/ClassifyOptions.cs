using System.ComponentModel.DataAnnotations;

namespace ProtoPNet.Service.Classifying;

/// <summary>Configuration section <c>Classify</c>.</summary>
public sealed class ClassifyOptions
{
    /// <summary>Classes listed when a request does not say (<c>topClasses</c>).</summary>
    public const int DefaultTopClasses = 3;

    /// <summary>Prototypes explained when a request does not say (<c>topPrototypes</c>), held to the limits below.</summary>
    public const int DefaultTopPrototypes = 5;

    public const string SectionName = "Classify";

    /// <summary>Most images in one <c>/classify/batch</c> request (default 32).</summary>
    [Range(1, 1024)]
    public int MaxBatchImages { get; set; } = 32;

    /// <summary>Most prototypes one answer may explain (<c>topPrototypes</c>, default limit 100).</summary>
    [Range(1, 100000)]
    public int MaxTopPrototypes { get; set; } = 100;

    /// <summary>Most prototypes that get a heatmap, each a picture of up to 4 megapixels (<c>topPrototypes</c> with <c>heatmaps=png</c>, default 10).</summary>
    [Range(1, 1000)]
    public int MaxHeatmapPrototypes { get; set; } = 10;

    /// <summary>Most prototypes per image whose boxes <c>verify=true</c> checks, each a masked copy of the image in one extra network run (default 10).</summary>
    [Range(1, 1000)]
    public int MaxVerifiedPrototypes { get; set; } = 10;

    /// <summary>
    /// Most pixels one request keeps to draw on (heatmaps, the card), its images together, each kept at its decoded size
    /// scaled down to at most 4 megapixels (default 40 million: ten such images); an image beyond it is refused 422.
    /// Requests that draw nothing keep none.
    /// </summary>
    [Range(typeof(long), "1", "9223372036854775807")]
    public long MaxDrawnPixels { get; set; } = 40_000_000;

    /// <summary>
    /// Whether a small <c>/classify</c> request (<see cref="InlineWork.IsSmall"/>: one image of at most 64 KiB and 256x256
    /// pixels, no heatmaps, no <c>verify</c>, a model whose runs take at most a millisecond an image, no other inference
    /// request in progress) runs on the socket thread that read it, without two hand-offs to the thread pool (default true; see
    /// Hosting/InlineScheduling.cs).
    /// </summary>
    public bool InlineSmallRequests { get; set; } = true;

    /// <summary>
    /// The longest a client may keep a streamed answer (heatmaps, long lists) waiting, in all, while it reads it (default
    /// 2 minutes; the time spent drawing heatmaps does not count). Past it the answer is cut off and the connection
    /// closed: a client that reads very slowly would otherwise keep the answer's pixels, in Images:MaxBufferedBytes,
    /// for as long as it kept reading. Logged as a warning and counted as 408.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00")]
    public TimeSpan AnswerReadTimeout { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>
    /// The longest one write of a streamed answer may wait for the client to read (default 20 seconds): a client that
    /// stops reading altogether is cut off then, not only after <see cref="AnswerReadTimeout"/>. A write is at most a
    /// few tens of kilobytes, so a client reading a kilobyte or more a second never meets it. Logged and counted as
    /// AnswerReadTimeout is.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00")]
    public TimeSpan AnswerStallTimeout { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>
    /// The longest a request body (an upload, a v2 infer body) may take to arrive, in all (default 5 minutes: 20 MB at
    /// about 0.5 Mbit/s). Past it the read stops, the bytes it held in Images:MaxBufferedBytes are given back, and the
    /// answer is 408: Kestrel's own rate floor is averaged over the whole body, so a client could send most of one and
    /// then stall for hours.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00")]
    public TimeSpan UploadReadTimeout { get; set; } = TimeSpan.FromMinutes(5);
}
