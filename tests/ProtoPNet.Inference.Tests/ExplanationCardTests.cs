using ProtoPNet.Inference.Rendering;
using SixLabors.ImageSharp;

namespace ProtoPNet.Inference.Tests;

/// <summary>The card's numbers and tags as drawn (the card itself is tested through the service, in the web tests).</summary>
public sealed class ExplanationCardTests
{
    [Fact]
    public void Tags_of_boxes_that_share_a_corner_stand_side_by_side_in_rank_order()
    {
        var corners = new[] { new Point(40, 30), new Point(40, 30), new Point(200, 5), new Point(41, 31) };
        var tags = ExplanationCard.TagPlaces(corners);

        Assert.Equal(new Point(40, 30), tags[0].Location);                 // the top row keeps its box's corner
        Assert.Equal(new Point(tags[0].Right, 30), tags[1].Location);      // the same box: right after it
        Assert.Equal(new Point(200, 5), tags[2].Location);                 // a box elsewhere: its own corner
        Assert.Equal(tags[1].Right, tags[3].X);                            // near both: past the two
        for (var i = 0; i < tags.Length; i++)
        {
            for (var j = 0; j < i; j++) Assert.False(tags[i].IntersectsWith(tags[j]), $"tag {i + 1} covers tag {j + 1}");
        }
        Assert.Equal(ExplanationCard.MaxRows, ExplanationCard.RowColours.Distinct().Count());
    }

    [Fact]
    public void Every_tags_number_stands_out_from_its_rows_colour()
    {
        // WCAG's 4.5:1 for small text: white on the green, orange, teal and magenta rows was 2.6 to 4.1.
        foreach (var colour in ExplanationCard.RowColours)
        {
            var contrast = ExplanationCard.Contrast(ExplanationCard.TagInk(colour), colour);
            Assert.True(contrast >= 4.5, $"the tag of row colour {colour} has a contrast of {contrast:0.00}");
        }
        Assert.Equal(21, ExplanationCard.Contrast(new(0, 0, 0), new(255, 255, 255)), 6);
    }

    [Theory]
    [InlineData(0.5, "50.0%")]
    [InlineData(0.99949, "99.9%")]
    [InlineData(0.9999989, ">99.9%")]
    [InlineData(1.0, "100.0%")]
    [InlineData(0.0004, "<0.1%")]
    [InlineData(0.0, "0.0%")]
    public void Probabilities_are_not_rounded_to_certainty_or_to_nothing(double probability, string shown)
    {
        Assert.Equal(shown, ExplanationCard.Percent(probability));
    }

    [Theory]
    [InlineData(-0.004, "0.00")]
    [InlineData(-0.006, "-0.01")]
    [InlineData(4.736, "4.74")]
    public void Numbers_have_two_decimals_and_no_negative_zero(double value, string shown)
    {
        Assert.Equal(shown, ExplanationCard.Number(value));
    }
}
