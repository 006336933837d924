using ProtoPNet.Inference.Rendering;
using ProtoPNet.Service.Serving;

namespace ProtoPNet.Service.Classifying;

/// <summary>
/// Charges a request that draws (heatmaps, the card) with the memory drawing holds, in the service's
/// <see cref="BufferBudget"/>, as each image is kept: its pixels (3 bytes each) until the answer is written, and the
/// picture being drawn, which an answer draws one at a time (its heatmaps, or its card's rows, one after another), so
/// only the largest image's counts. Charged before anything is drawn, so that a request that does not fit is refused
/// (503 "overloaded", or 413 beyond the whole budget) before its answer starts, not cut off in the middle of it.
/// </summary>
internal sealed class DrawingMemory(BufferBudget.Hold hold, HeatmapUse use, int mapHeight)
{
    private long _largestDrawing;

    /// <summary>Charges one image kept at <paramref name="width"/> x <paramref name="height"/>; throws the budget's problem when it does not fit.</summary>
    public void Keep(int width, int height)
    {
        var drawing = DrawingBytes(use, width, height, mapHeight);
        hold.Add(3L * width * height + Math.Max(0, drawing - _largestDrawing));
        _largestDrawing = Math.Max(_largestDrawing, drawing);
    }

    /// <summary>The most bytes drawing on one kept image holds beyond its pixels.</summary>
    public static long DrawingBytes(HeatmapUse use, int width, int height, int mapHeight) => use switch
    {
        HeatmapUse.Sent => HeatmapWritingBytes(width, height, mapHeight),
        HeatmapUse.Drawn => HeatmapRenderer.OverlayBytes(width, height, mapHeight) + ExplanationCard.RenderingBytes(ExplanationCard.MaxRows),
        _ => 0,
    };

    /// <summary>
    /// Writing one heatmap into a JSON answer (<c>Apis.HeatmapPng</c>): first the overlay and the room for its PNG, then
    /// the PNG, its data URI and the JSON writer's copy of that.
    /// </summary>
    private static long HeatmapWritingBytes(int width, int height, int mapHeight)
    {
        long png = HeatmapRenderer.PngCapacity(width, height);
        var dataUri = HeatmapRenderer.QuotedPngDataUriLength(png);
        return Math.Max(HeatmapRenderer.OverlayBytes(width, height, mapHeight) + png, png + 2 * dataUri);
    }
}
