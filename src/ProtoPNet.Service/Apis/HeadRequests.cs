using Microsoft.AspNetCore.Routing;

namespace ProtoPNet.Service.Apis;

/// <summary>
/// HEAD wherever GET (RFC 9110, 9.3.2: a general-purpose server supports both): the GET endpoint runs, and the server
/// sends its status and headers without the body. Caches and load balancers ask for a picture's ETag or a probe's status
/// this way. Not for a stream that does not end by itself (<see cref="WithoutHead{TBuilder}"/>); not in the OpenAPI
/// document, where each GET stands for both.
/// </summary>
public static class HeadRequests
{
    public static TBuilder AnswerHead<TBuilder>(this TBuilder builder) where TBuilder : IEndpointConventionBuilder
    {
        // Finally: after each endpoint's own conventions, so that its methods and its opt-out are known.
        builder.Finally(endpoint =>
        {
            if (endpoint.Metadata.OfType<NoHead>().Any()) return;
            // Routing reads the last method metadata.
            var methods = endpoint.Metadata.OfType<IHttpMethodMetadata>().LastOrDefault();
            if (methods is null || !methods.HttpMethods.Contains(HttpMethods.Get) || methods.HttpMethods.Contains(HttpMethods.Head)) return;
            endpoint.Metadata.Add(new HttpMethodMetadata([.. methods.HttpMethods, HttpMethods.Head], methods.AcceptCorsPreflight));
        });
        return builder;
    }

    /// <summary>Keeps a GET endpoint from answering HEAD: a stream that runs until something happens would run unseen.</summary>
    public static TBuilder WithoutHead<TBuilder>(this TBuilder builder) where TBuilder : IEndpointConventionBuilder =>
        builder.WithMetadata(NoHead.Instance);

    private sealed class NoHead
    {
        public static readonly NoHead Instance = new();
    }
}
