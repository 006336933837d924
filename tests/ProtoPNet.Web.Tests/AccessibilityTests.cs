using Microsoft.Playwright;
using ProtoPNet.Inference.Rendering;

namespace ProtoPNet.Web.Tests;

/// <summary>
/// The page for people who use the keyboard, a screen reader or a phone, or who see colours poorly: where the focus goes,
/// what comes into view, and how far text and edges stand out (WCAG 2.1 AA).
/// </summary>
[Collection(WebCollection.Name)]
public sealed class AccessibilityTests(WebFixture fixture)
{
    /// <summary>WCAG's contrast ratio of two CSS colours as getComputedStyle gives them ("rgb(r, g, b)"), in the page.</summary>
    private const string ContrastFunction = """
        (a, b) => {
          const luminance = (css) => {
            const [r, g, b] = css.match(/\d+(\.\d+)?/g).slice(0, 3).map(Number).map((v) => v / 255)
              .map((c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
            return 0.2126 * r + 0.7152 * g + 0.0722 * b;
          };
          const [la, lb] = [luminance(a), luminance(b)];
          return (Math.max(la, lb) + 0.05) / (Math.min(la, lb) + 0.05);
        }
        """;

    private Task<IPage> OpenAsync(int width = 1100, int height = 900) => fixture.OpenPageAsync(width, height);

    private static Task WaitForResultAsync(IPage page) => WebFixture.WaitForResultAsync(page);

    [Fact]
    public async Task The_skip_link_moves_the_focus_into_the_view_shown_and_keeps_the_view()
    {
        var page = await OpenAsync();
        await page.GotoAsync("/#gallery");
        await page.Locator("#view-gallery").WaitForAsync();

        // The first Tab of a page reaches the skip link (it took two when an element was named "gallery"); Enter on it
        // went to #main, a name of no view, which showed the classify view.
        await page.Keyboard.PressAsync("Tab");
        Assert.Equal("Skip to content", await page.EvaluateAsync<string>("() => document.activeElement.textContent"));
        await page.Keyboard.PressAsync("Enter");
        Assert.Equal("main", await page.EvaluateAsync<string>("() => document.activeElement.id"));
        Assert.Equal("#gallery", await page.EvaluateAsync<string>("() => location.hash"));
        Assert.True(await page.Locator("#view-gallery").IsVisibleAsync());
        Assert.True(await page.Locator("#view-classify").IsHiddenAsync());
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task A_view_opened_from_the_keyboard_goes_on_from_its_tab()
    {
        var page = await OpenAsync();
        // The tabs' addresses (#gallery, ...) name views: an element of that id (the gallery's list was "gallery") is where
        // the browser moves the keyboard's starting point, past the view's own controls.
        Assert.Empty(await page.EvaluateAsync<string[]>("() => ['classify', 'gallery', 'training'].filter(view => document.getElementById(view))"));
        await page.FocusAsync("#tab-gallery");
        await page.Keyboard.PressAsync("Enter");
        await page.Locator("#view-gallery").WaitForAsync();
        await page.Keyboard.PressAsync("Tab");
        Assert.Equal("tab-training", await page.EvaluateAsync<string>("() => document.activeElement.id"));
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task Box_numbers_and_the_focus_ring_stand_out_from_what_is_behind_them()
    {
        var page = await OpenAsync();
        // The page's box colours are the card's (a box is one colour on both), and each tag's number reads at 4.5:1.
        var colours = await page.EvaluateAsync<string[]>("async () => (await import('/page.js')).BOX_COLOURS");
        Assert.Equal(ExplanationCard.RowColours.Select(c => $"#{c.R:x2}{c.G:x2}{c.B:x2}"), colours);
        var inks = await page.EvaluateAsync<string[]>("async () => { const m = await import('/page.js'); return m.BOX_COLOURS.map(m.tagInk); }");
        for (var i = 0; i < colours.Length; i++)
        {
            var contrast = ExplanationCard.Contrast(Rgb(inks[i]), Rgb(colours[i]));
            Assert.True(contrast >= 4.5, $"the tag on {colours[i]} is {inks[i]}: {contrast:0.00}:1");
        }

        // And the tags drawn use it.
        await page.FillAsync("#top-prototypes", "8");
        await page.SetInputFilesAsync("#file", fixture.SourceImage(0));
        await WaitForResultAsync(page);
        var tagContrasts = await page.Locator("#overview-boxed .tag").EvaluateAllAsync<double[]>(
            $"tags => tags.map(tag => ({ContrastFunction})(getComputedStyle(tag).color, getComputedStyle(tag).backgroundColor))");
        Assert.NotEmpty(tagContrasts);
        Assert.All(tagContrasts, contrast => Assert.True(contrast >= 4.5, $"a tag's number stands out {contrast:0.00}:1"));

        // The focus ring, against the page and the header (WCAG 1.4.11: 3:1).
        await page.FocusAsync("#top-prototypes");
        var ring = await page.EvaluateAsync<string>("() => getComputedStyle(document.activeElement).outlineColor");
        foreach (var behind in new[] { "rgb(255, 255, 255)", await page.EvaluateAsync<string>("() => getComputedStyle(document.querySelector('header.top')).backgroundColor") })
        {
            var contrast = await page.EvaluateAsync<double>($"([a, b]) => ({ContrastFunction})(a, b)", new[] { ring, behind });
            Assert.True(contrast >= 3, $"the focus ring {ring} on {behind}: {contrast:0.00}:1");
        }
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task On_a_phone_the_answer_and_an_error_come_into_view()
    {
        var page = await OpenAsync(375, 740);
        // The answer comes below the form and the examples, out of view.
        Assert.True(await page.EvaluateAsync<double>("() => document.getElementById('status').getBoundingClientRect().top") > 740 * 0.75,
            "the answer's place is in view already: the test shows nothing");
        await page.SetInputFilesAsync("#file", fixture.SourceImage(0));
        await WaitForResultAsync(page);
        var top = await page.EvaluateAsync<double>("() => document.getElementById('result').getBoundingClientRect().top");
        Assert.InRange(top, 0, 740 * 0.75);

        // The error box is at the top of the page, above what is in view. (The page is kept long, so that the answer
        // it hides does not bring its top into view by shortening the page.)
        await page.EvaluateAsync("() => { document.body.style.minHeight = '5000px'; window.scrollTo(0, 4000); }");
        Assert.True(await page.EvaluateAsync<double>("() => window.scrollY") > 3000);
        await page.SetInputFilesAsync("#file", new FilePayload { Name = "notes.txt", MimeType = "text/plain", Buffer = "not an image"u8.ToArray() });
        await page.Locator("#error").WaitForAsync(new LocatorWaitForOptions { State = WaitForSelectorState.Visible });
        var box = await page.EvaluateAsync<double[]>("() => { const r = document.getElementById('error').getBoundingClientRect(); return [r.top, r.bottom]; }");
        Assert.True(box[0] >= 0 && box[1] <= 740, $"the error box is at {box[0]} to {box[1]} of a 740 px screen");
        await page.Context.CloseAsync();
    }

    private static SixLabors.ImageSharp.PixelFormats.Rgb24 Rgb(string css) => css.Length switch
    {
        4 => new(Convert.ToByte(new string(css[1], 2), 16), Convert.ToByte(new string(css[2], 2), 16), Convert.ToByte(new string(css[3], 2), 16)),
        _ => new(Convert.ToByte(css[1..3], 16), Convert.ToByte(css[3..5], 16), Convert.ToByte(css[5..7], 16)),
    };
}
