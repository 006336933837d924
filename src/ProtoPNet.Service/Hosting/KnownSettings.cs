using System.Reflection;
using Microsoft.Extensions.Options;
using ProtoPNet.Service.Problems;

namespace ProtoPNet.Service.Hosting;

/// <summary>
/// The service's own configuration sections hold only the settings their options classes read. The configuration binder
/// passes over a key it has no property for, so a misspelt setting (<c>Batching__MaxBatchSise=4</c>) would leave the
/// default in force without a word; here it stops the start like a bad value, naming the key and the setting meant.
/// </summary>
public static class KnownSettings
{
    /// <summary>Binds <typeparamref name="TOptions"/> to <paramref name="sectionName"/> and refuses, at validation, a key in it that no property reads.</summary>
    public static OptionsBuilder<TOptions> BindSettings<TOptions>(this OptionsBuilder<TOptions> options, IConfiguration configuration,
        string sectionName) where TOptions : class
    {
        var section = configuration.GetSection(sectionName);
        options.Bind(section);
        options.Services.AddSingleton<IValidateOptions<TOptions>>(new UnknownKeysValidator<TOptions>(options.Name, configuration, section));
        return options;
    }

    /// <summary>
    /// Keys that ASP.NET Core's own docs put in these sections, which this service reads elsewhere: where to set them.
    /// </summary>
    private static readonly Dictionary<string, string> ReadElsewhere = new(StringComparer.OrdinalIgnoreCase)
    {
        ["Logging:LogLevel"] = "the log levels are Serilog:MinimumLevel's (e.g. Serilog__MinimumLevel__Default=Debug, " +
                               "Serilog__MinimumLevel__Override__Microsoft.AspNetCore=Information)",
        ["Logging:Console"] = "the console's layout is Logging:Format's (console or json)",
    };

    /// <summary>One message per key directly under <paramref name="section"/> that is no property of <paramref name="optionsType"/>.</summary>
    public static IReadOnlyList<string> UnknownKeys(IConfigurationSection section, Type optionsType)
    {
        var settings = optionsType.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(IsBound).Select(p => p.Name).ToArray();
        return section.GetChildren()
            .Where(child => !settings.Contains(child.Key, StringComparer.OrdinalIgnoreCase))
            .Select(child => ReadElsewhere.TryGetValue(child.Path, out var where)
                ? $"{child.Path} is not read by this service: {where}."
                : $"{child.Path} is not a setting; " + (NearestName.Of(child.Key, settings) is { } meant
                    ? $"did you mean {section.Path}:{meant}?"
                    : $"{section.Path} has {string.Join(", ", settings)}."))
            .ToArray();
    }

    /// <summary>
    /// One message per setting of <paramref name="optionsType"/> given under a top-level section whose name is within two
    /// edits of <paramref name="sectionName"/> but not it (<c>Model:Root</c>, <c>Trainig__JobsRoot</c>): the binder reads
    /// the section by its own name only, so the whole misspelt section was passed over and every default kept. Only keys
    /// that are settings of the section meant count: other programs' sections and variables are left alone.
    /// </summary>
    public static IReadOnlyList<string> MisspeltSectionKeys(IConfiguration configuration, string sectionName, Type optionsType)
    {
        if (sectionName.Contains(':', StringComparison.Ordinal)) return [];
        var settings = optionsType.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(IsBound).Select(p => p.Name).ToArray();
        return configuration.GetChildren()
            .Where(other => !other.Key.Equals(sectionName, StringComparison.OrdinalIgnoreCase)
                && NearestName.Of(other.Key, [sectionName]) is not null)
            .SelectMany(other => other.GetChildren())
            .Select(child => (child.Path, Setting: Array.Find(settings, s => s.Equals(child.Key, StringComparison.OrdinalIgnoreCase))))
            .Where(key => key.Setting is not null)
            .Select(key => $"{key.Path} is not a setting; did you mean {sectionName}:{key.Setting}?")
            .ToArray();
    }

    /// <summary>What the binder sets: a property with a public setter, or a collection it fills (not a computed value).</summary>
    private static bool IsBound(PropertyInfo property) => property.SetMethod is { IsPublic: true }
        || property.PropertyType != typeof(string) && typeof(System.Collections.IEnumerable).IsAssignableFrom(property.PropertyType);

    private sealed class UnknownKeysValidator<TOptions>(string? optionsName, IConfiguration configuration, IConfigurationSection section)
        : IValidateOptions<TOptions> where TOptions : class
    {
        public ValidateOptionsResult Validate(string? name, TOptions options)
        {
            if (optionsName is not null && name != optionsName) return ValidateOptionsResult.Skip;
            var unknown = UnknownKeys(section, typeof(TOptions)).Concat(MisspeltSectionKeys(configuration, section.Path, typeof(TOptions))).ToArray();
            return unknown.Length == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(unknown);
        }
    }
}
