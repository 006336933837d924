using ProtoPNet.Inference.Runtime;

namespace ProtoPNet.Inference.Tests;

/// <summary>The dependencies read from ONNX Runtime's own libraries (as shipped in the build output) without loading
/// them: what the service checks before it lets ONNX Runtime load the CUDA provider.</summary>
public class ElfDependenciesTests
{
    private static readonly string NativeFolder = Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native");

    [Fact]
    public void TheCudaProviderNeedsTheCudaRuntimeTheDriverAndTheCLibrary()
    {
        var dependencies = ElfDependencies.Read(Path.Combine(NativeFolder, "libonnxruntime_providers_cuda.so"));
        Assert.Contains(dependencies, d => d.StartsWith("libcudart.so.", StringComparison.Ordinal));
        Assert.Contains(dependencies, d => d.StartsWith("libcublas.so.", StringComparison.Ordinal));
        Assert.Contains("libcuda.so.1", dependencies);
        Assert.Contains("libc.so.6", dependencies);
        Assert.Equal(dependencies.Count, dependencies.Distinct().Count());
        // The bridge it binds Provider_GetHost from is loaded by ONNX Runtime, not named as a dependency.
        Assert.DoesNotContain(dependencies, d => d.Contains("onnxruntime", StringComparison.Ordinal));
    }

    [Fact]
    public void TheCpuRuntimeNeedsNoCudaLibrary()
    {
        var dependencies = ElfDependencies.Read(Path.Combine(NativeFolder, "libonnxruntime.so"));
        Assert.Contains("libc.so.6", dependencies);
        Assert.DoesNotContain(dependencies, d => d.StartsWith("libcu", StringComparison.Ordinal));
    }

    [Fact]
    public void AFileThatIsNotALibraryOrIsCutShortIsRefused()
    {
        var directory = Directory.CreateTempSubdirectory("elf-");
        try
        {
            var text = Path.Combine(directory.FullName, "notes.so");
            File.WriteAllText(text, "not a library, though long enough to hold an ELF header: " + new string('x', 64));
            Assert.Throws<InvalidDataException>(() => ElfDependencies.Read(text));

            var cut = Path.Combine(directory.FullName, "cut.so");
            using (var source = File.OpenRead(Path.Combine(NativeFolder, "libonnxruntime_providers_shared.so")))
            using (var target = File.Create(cut))
            {
                var head = new byte[200];
                source.ReadExactly(head);
                target.Write(head);
            }
            Assert.Throws<InvalidDataException>(() => ElfDependencies.Read(cut));
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }
}
