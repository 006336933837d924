using System.Net;
using Microsoft.Extensions.DependencyInjection;
using ProtoPNet.Service.Serving;
using ProtoPNet.Service.Tests.Infrastructure;
using ProtoPNet.Tests.Shared;

namespace ProtoPNet.Service.Tests.Serving;

/// <summary>
/// The count of inference requests in progress, on which a small /classify's staying on its socket thread depends
/// (<see cref="InlineSchedulingTests"/>): a request counts from before its upload is read until its answer is written,
/// requests that run no network do not count, and each service counts only its own.
/// </summary>
[Collection(BundlesCollection.Name)]
public class InferenceRequestsTests(TrainerBundles bundles)
{
    /// <summary>
    /// A request is alone (a single image may take every core) only while it is the only one and no two have been in
    /// progress together for the quiet period (Batching:LoneQuietMs).
    /// </summary>
    [Fact]
    public async Task ARequestIsAloneOnlyOnceNoTwoHaveBeenTogetherForTheQuietPeriod()
    {
        var requests = new InferenceRequests(TimeSpan.FromHours(1));
        requests.Enter();
        Assert.True(requests.Alone);    // never two together
        requests.Enter();
        Assert.False(requests.Alone);   // two now
        requests.Leave();
        Assert.False(requests.Alone);   // the only one, but the hour since two were together has not passed

        var brief = new InferenceRequests(TimeSpan.FromMilliseconds(50));
        brief.Enter();
        brief.Enter();
        brief.Leave();
        await Eventually.TrueAsync(() => brief.Alone, "still not alone long after the quiet period");
    }

    [Fact]
    public async Task AClassifyRequestCountsWhileItIsInProgressAndAHealthProbeDoesNot()
    {
        await using var factory = bundles.SmokeService();
        var requests = factory.Services.GetRequiredService<InferenceRequests>();
        var client = factory.Server.CreateClient();
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/health/ready")).StatusCode);
        Assert.Equal(0, requests.InProgress);

        // Half an upload sent: the request is in progress while the service waits for the rest.
        var image = Http.BundleImage(bundles.SmokeBundle, 1);
        var resume = new TaskCompletionSource();
        var slow = client.PostAsync("/classify", new PausingContent(image, image.Length / 2, resume.Task, "image/png"));
        await Eventually.TrueAsync(() => requests.InProgress == 1, "the paused /classify did not count");
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/health/live")).StatusCode);
        Assert.Equal(1, requests.InProgress);

        // An Open Inference Protocol request beside it, also half sent, counts too.
        var tensor = System.Text.Encoding.UTF8.GetBytes(
            $$"""{"inputs":[{"name":"image","datatype":"FP32","shape":[1,3,32,32],"data":[{{string.Join(",", Enumerable.Repeat("0.5", 3 * 32 * 32))}}]}]}""");
        var slowTensor = client.PostAsync("/v2/models/smoke/infer", new PausingContent(tensor, tensor.Length / 2, resume.Task, "application/json"));
        await Eventually.TrueAsync(() => requests.InProgress == 2, "the paused v2 infer did not count");

        // Another service in the same process counts only its own requests.
        await using var other = bundles.SmokeService();
        Assert.Equal(HttpStatusCode.OK, (await other.CreateClient().GetAsync("/health/ready")).StatusCode);
        Assert.Equal(0, other.Services.GetRequiredService<InferenceRequests>().InProgress);

        resume.SetResult();
        await Http.JsonAsync(await slow);
        await Http.JsonAsync(await slowTensor);
        await Eventually.TrueAsync(() => requests.InProgress == 0, "the answered requests did not leave the count");
    }
}
