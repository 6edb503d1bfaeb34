from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("testapp", "0003_story"),
    ]

    operations = [
        migrations.AddField(
            model_name="article",
            name="header_image_alt",
            field=models.CharField(blank=True, max_length=200),
        ),
    ]
