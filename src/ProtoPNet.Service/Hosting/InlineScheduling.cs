using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.Options;
using ProtoPNet.Service.Classifying;
using ProtoPNet.Service.Serving;

namespace ProtoPNet.Service.Hosting;

/// <summary>
/// Small <c>/classify</c> requests run on the socket thread that read them (Kestrel's UnsafePreferInlineScheduling,
/// with the inline socket completions of <see cref="SocketCompletions"/>): no hand-off to the thread pool to start the
/// request, none to send its answer, so two thread wake-ups fewer. A socket thread serves many connections, so only
/// work known to be small stays on it (<see cref="InlineWork.IsSmall"/>), and the health probes. Every other request moves to the pool before
/// its endpoint runs, and reads its body through <see cref="PoolResumingRequestBody"/>; a <c>/classify</c> request that
/// is not small moves once its upload is read, before it decodes (<see cref="ClassificationService"/>, which applies
/// the rule only on a socket thread). Off with <c>Classify:InlineSmallRequests=false</c>: Kestrel then starts every
/// request on the thread pool.
/// </summary>
public static class InlineScheduling
{
    public static IHostApplicationBuilder AddInlineScheduling(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<SocketTransportOptions>().Configure<IOptions<ClassifyOptions>>((socket, classify) =>
            socket.UnsafePreferInlineScheduling = classify.Value.InlineSmallRequests);
        return builder;
    }

    /// <summary>
    /// Moves every request off its socket thread, for good, unless its endpoint is marked <see cref="InlineWork.RunsInline{TBuilder}"/>
    /// (stays) or <see cref="InlineWork.MayRunInline{TBuilder}"/> (decides itself).
    /// </summary>
    public static WebApplication UseInlineScheduling(this WebApplication app)
    {
        if (!app.Services.GetRequiredService<IOptions<ClassifyOptions>>().Value.InlineSmallRequests) return app;
        app.Use(async (context, next) =>
        {
            var endpoint = context.GetEndpoint();
            if (!InlineWork.RunsInline(endpoint) && !InlineWork.MayRunInline(endpoint)) await OffSocketThreads(context);
            await next(context);
        });
        return app;
    }

    /// <summary>
    /// Moves the request to the thread pool, and keeps it there: its body is read through
    /// <see cref="PoolResumingRequestBody"/>. Await it in the method that is to go on on the pool (see <see cref="PoolHop"/>).
    /// </summary>
    private static PoolHop OffSocketThreads(HttpContext context)
    {
        // Also when the request started on the pool (a connection's first does): its later reads may end on a socket thread.
        if (context.Features.Get<IHttpRequestBodyDetectionFeature>()?.CanHaveBody != false)
        {
            context.Request.Body = new PoolResumingRequestBody(context.Request.Body);
        }
        return default;
    }
}
