namespace ProtoPNet.Service.Models;

/// <summary>
/// Which model a request asks for: the default model (no name), a model name (its served version) or one version of it.
/// Requests write it as <c>name</c> or <c>name@version</c>; this is the only place that reads that form.
/// </summary>
public readonly record struct ModelSelector(string? Name, string? Version = null)
{
    public static readonly ModelSelector Default = new(null);

    /// <summary>Reads a <c>model</c> parameter: empty for the default model, <c>name</c> or <c>name@version</c>.</summary>
    public static ModelSelector Parse(string? model)
    {
        if (string.IsNullOrWhiteSpace(model)) return Default;
        var at = model.IndexOf('@');
        if (at < 0) return new ModelSelector(model.Trim());
        var version = model[(at + 1)..].Trim();
        return new ModelSelector(model[..at].Trim(), version.Length == 0 ? null : version);
    }

    public override string ToString() => Version is null ? Name ?? "" : $"{Name}@{Version}";
}
