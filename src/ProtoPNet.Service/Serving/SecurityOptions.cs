using System.Security.Cryptography;
using System.Text;
using ProtoPNet.Service.Problems;

namespace ProtoPNet.Service.Serving;

/// <summary>Configuration section <c>Security</c> (environment <c>Security__AdminApiKey</c>, <c>Security__ClassifyApiKey</c>).</summary>
public sealed class SecurityOptions
{
    public const string SectionName = "Security";
    public const string ApiKeyHeader = "X-Api-Key";

    /// <summary>Key for administrative endpoints (reload; training jobs). Empty (default): those endpoints answer 403.</summary>
    public string? AdminApiKey { get; set; }

    /// <summary>Whether the administrative endpoints are disabled: no admin key is configured.</summary>
    public bool AdminDisabled => string.IsNullOrEmpty(AdminApiKey);

    /// <summary>Key for the classification endpoints (/classify..., v2 infer). Empty (default): no key needed.</summary>
    public string? ClassifyApiKey { get; set; }

    /// <summary>Origins allowed to call the API from a browser (CORS). Empty (default): no cross-origin access.</summary>
    public string[] CorsOrigins { get; set; } = [];
}

/// <summary>Which key an endpoint takes (endpoint metadata): the OpenAPI document declares it as the endpoint's security.</summary>
public enum ApiKeyKind
{
    Admin,
    Classify,
}

/// <summary>The key an endpoint needs in <c>X-Api-Key</c>, as endpoint metadata.</summary>
public sealed record ApiKeyMetadata(ApiKeyKind Kind);

/// <summary>API keys in <c>X-Api-Key</c>, compared in constant time so the answer's timing tells nothing about the key.</summary>
public static class ApiKeys
{
    /// <summary>
    /// Administrative endpoints, or a group of them: disabled (403) without a configured key; 401 without the header, 403
    /// with a wrong key. Both problems are declared in the OpenAPI document.
    /// </summary>
    public static TBuilder RequireAdminKey<TBuilder>(this TBuilder builder) where TBuilder : IEndpointConventionBuilder => builder
        .AddEndpointFilter(async (context, next) =>
        {
            var security = context.HttpContext.RequestServices.GetRequiredService<Microsoft.Extensions.Options.IOptions<SecurityOptions>>().Value;
            if (security.AdminDisabled)
            {
                return ProblemCatalog.Problem(ProblemCatalog.AdminDisabled,
                    "Security:AdminApiKey (environment Security__AdminApiKey) is not configured, so administrative endpoints are disabled.");
            }
            return Check(context.HttpContext, security.AdminApiKey!) ?? await next(context);
        })
        .WithMetadata(new ApiKeyMetadata(ApiKeyKind.Admin))
        .WithMetadata(KeyProblems);

    /// <summary>Classification endpoints: open unless <c>Security:ClassifyApiKey</c> is set (then 401 without the header, 403 with a wrong key).</summary>
    public static TBuilder RequireClassifyKey<TBuilder>(this TBuilder builder) where TBuilder : IEndpointConventionBuilder => builder
        .AddEndpointFilter(async (context, next) =>
        {
            var key = context.HttpContext.RequestServices.GetRequiredService<Microsoft.Extensions.Options.IOptions<SecurityOptions>>().Value.ClassifyApiKey;
            return string.IsNullOrEmpty(key) ? await next(context) : Check(context.HttpContext, key) ?? await next(context);
        })
        .WithMetadata(new ApiKeyMetadata(ApiKeyKind.Classify));

    /// <summary>
    /// <see cref="RequireClassifyKey"/> with its 401 and 403 problems declared in the OpenAPI document (as ProducesProblem
    /// does for one endpoint; this also serves groups). The v2 routes declare them next to their protocol's own error bodies.
    /// </summary>
    public static TBuilder RequireClassifyKeyWithProblems<TBuilder>(this TBuilder builder) where TBuilder : IEndpointConventionBuilder => builder
        .RequireClassifyKey()
        .WithMetadata(KeyProblems);

    /// <summary>The 401 and 403 problems of a key check, as ProducesProblem declares them for one endpoint (this also serves groups).</summary>
    private static readonly object[] KeyProblems =
    [
        new ProducesResponseTypeMetadata(StatusCodes.Status401Unauthorized, typeof(Microsoft.AspNetCore.Mvc.ProblemDetails), ["application/problem+json"]),
        new ProducesResponseTypeMetadata(StatusCodes.Status403Forbidden, typeof(Microsoft.AspNetCore.Mvc.ProblemDetails), ["application/problem+json"]),
    ];

    private static IResult? Check(HttpContext context, string expected)
    {
        var sent = context.Request.Headers[SecurityOptions.ApiKeyHeader].ToString();
        if (string.IsNullOrEmpty(sent)) return Refusal(context, ProblemCatalog.ApiKeyMissing, $"This endpoint needs the header {SecurityOptions.ApiKeyHeader}.");
        return Matches(sent, expected) ? null
            : Refusal(context, ProblemCatalog.ApiKeyRejected, $"The {SecurityOptions.ApiKeyHeader} header does not hold the key this endpoint needs.");
    }

    /// <summary>A problem, or the Open Inference Protocol's <c>{"error": ...}</c> under /v2.</summary>
    private static IResult Refusal(HttpContext context, ProblemKind kind, string detail) => OpenInferenceErrors.Answer(context, kind, detail);

    /// <summary>Constant-time comparison of fixed-length hashes, so neither the content nor the length leaks through timing.</summary>
    public static bool Matches(string sent, string expected) =>
        CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(sent)), SHA256.HashData(Encoding.UTF8.GetBytes(expected)));
}
