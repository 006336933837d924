using ProtoPNet.Service.Hosting;

namespace ProtoPNet.Service.Tests;

/// <summary>The service turns inline socket completions on, unless the environment already decided.</summary>
public class SocketCompletionsTests
{
    [Theory]
    [InlineData(null, "1")]
    [InlineData("", "1")]
    [InlineData("0", "0")]
    [InlineData("1", "1")]
    public void InlineCompletionsAreOnUnlessTheEnvironmentSaysOtherwise(string? before, string after)
    {
        var original = Environment.GetEnvironmentVariable(SocketCompletions.Variable);
        try
        {
            Environment.SetEnvironmentVariable(SocketCompletions.Variable, before);
            SocketCompletions.RunInlineUnlessConfigured();
            Assert.Equal(after, Environment.GetEnvironmentVariable(SocketCompletions.Variable));
        }
        finally
        {
            Environment.SetEnvironmentVariable(SocketCompletions.Variable, original);
        }
    }
}
