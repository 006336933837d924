using System.Text.RegularExpressions;
using ProtoPNet.Service.Problems;

namespace ProtoPNet.Service.Models;

/// <summary>
/// Which model a request asks for: the default model (no name), a model name (its served version) or one version of it.
/// Requests write it as <c>name</c> or <c>name@version</c>; this is the only place that reads that form, and the one
/// rule for what a model name or version may be.
/// </summary>
public readonly partial record struct ModelSelector(string? Name, string? Version = null)
{
    public static readonly ModelSelector Default = new(null);

    /// <summary>What a valid name or version is, for error details.</summary>
    public const string NameRule =
        "model names and versions are ASCII letters, digits, '.', '_' and '-', start with a letter, digit or '_', hold no '..' and have at most 128 characters";

    /// <summary>
    /// Reads a <c>model</c> parameter: empty for the default model, <c>name</c> or <c>name@version</c>. A name or version
    /// that could not be a folder name (<see cref="IsValidName"/>), or an '@' with nothing after it, is an invalid parameter.
    /// </summary>
    public static ModelSelector Parse(string? model)
    {
        if (string.IsNullOrWhiteSpace(model)) return Default;
        var at = model.IndexOf('@');
        var name = (at < 0 ? model : model[..at]).Trim();
        var version = at < 0 ? null : model[(at + 1)..].Trim();
        if (!IsValidName(name)) throw Invalid(model, $"'{name}' is not a model name");
        if (version is not null && !IsValidName(version))
        {
            throw Invalid(model, version.Length == 0 ? "the version after '@' is missing (write name or name@version)" : $"'{version}' is not a version");
        }
        return new ModelSelector(name, version);
    }

    /// <summary>Model names and versions are folder names: no request can name a file outside the model root.</summary>
    public static bool IsValidName(string? value) => value is not null && FolderName().IsMatch(value) && !value.Contains("..", StringComparison.Ordinal);

    private static ProblemException Invalid(string model, string why) =>
        new(ProblemCatalog.InvalidParameter, $"model '{model}' is not valid: {why}; {NameRule}.");

    [GeneratedRegex(@"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}\z")]
    private static partial Regex FolderName();

    public override string ToString() => Version is null ? Name ?? "" : $"{Name}@{Version}";
}
