/* ldm-models.c: model search path (configurable list of folders), lookup of
 * the demo models by file name, listing for the dialog, and a quick hash
 * recorded in every layer's recipe.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <glib/gstdio.h>
#include <libgimp/gimp.h>

#include <ldm.h>

#include "ldm-models.h"

static void
add_list (GPtrArray   *dirs,
          const gchar *list)
{
  gchar **parts;
  gint    i;

  if (! list || ! *list)
    return;
  parts = g_strsplit (list, G_SEARCHPATH_SEPARATOR_S, -1);
  for (i = 0; parts[i]; i++)
    {
      gchar *d = g_strstrip (parts[i]);

      if (*d)
        g_ptr_array_add (dirs, g_strdup (d));
    }
  g_strfreev (parts);
}

gchar **
gimp_ldm_models_search_path (const gchar *configured)
{
  GPtrArray *dirs = g_ptr_array_new ();

  add_list (dirs, configured);
  add_list (dirs, g_getenv ("LDM_MODEL_PATH"));
  g_ptr_array_add (dirs, g_build_filename (gimp_directory (), "gimp-ldm",
                                           "models", NULL));
  g_ptr_array_add (dirs, g_strdup (LDM_MODELDIR));
  g_ptr_array_add (dirs, NULL);
  return (gchar **) g_ptr_array_free (dirs, FALSE);
}

gchar *
gimp_ldm_models_find (const gchar *configured,
                 const gchar *name)
{
  gchar **dirs = gimp_ldm_models_search_path (configured);
  gchar  *found = NULL;
  gint    i;

  for (i = 0; dirs[i] && ! found; i++)
    {
      gchar *p = g_build_filename (dirs[i], name, NULL);

      if (g_file_test (p, G_FILE_TEST_EXISTS))
        found = p;
      else
        g_free (p);
    }
  g_strfreev (dirs);
  return found;
}

static gboolean
is_model (const gchar *dir,
          const gchar *name)
{
  gchar   *p;
  gboolean ok = FALSE;

  if (g_str_has_suffix (name, ".safetensors"))
    return TRUE;
  /* a diffusers folder: has model_index.json */
  p = g_build_filename (dir, name, "model_index.json", NULL);
  ok = g_file_test (p, G_FILE_TEST_IS_REGULAR);
  g_free (p);
  return ok;
}

GList *
gimp_ldm_models_list (const gchar *configured)
{
  gchar **dirs = gimp_ldm_models_search_path (configured);
  GList  *list = NULL;
  gint    i;

  for (i = 0; dirs[i]; i++)
    {
      GDir        *dir = g_dir_open (dirs[i], 0, NULL);
      const gchar *name;

      if (! dir)
        continue;
      while ((name = g_dir_read_name (dir)))
        if (is_model (dirs[i], name))
          {
            gchar *p = g_build_filename (dirs[i], name, NULL);

            if (g_list_find_custom (list, p, (GCompareFunc) strcmp))
              g_free (p);
            else
              list = g_list_prepend (list, p);
          }
      g_dir_close (dir);
    }
  g_strfreev (dirs);
  return g_list_sort (list, (GCompareFunc) g_strcmp0);
}

gchar *
gimp_ldm_models_roots (const gchar *configured)
{
  gchar **dirs = gimp_ldm_models_search_path (configured);
  GString *out = g_string_new (NULL);
  gint     i;

  /* only the folders that exist: a missing root is an error of the scan */
  for (i = 0; dirs[i]; i++)
    if (g_file_test (dirs[i], G_FILE_TEST_IS_DIR))
      g_string_append_printf (out, "%s%s", out->len ? ":" : "", dirs[i]);
  g_strfreev (dirs);
  return g_string_free (out, FALSE);
}

typedef struct
{
  GList       *list;
  const gchar *family;
} AddonScan;

static int
on_addon (void                  *user,
          const ldm_model_entry *e)
{
  AddonScan    *scan = user;
  GimpLdmAddon *a;

  if (e->error || (scan->family && e->family && e->family[0] &&
                   ! g_str_has_prefix (scan->family, e->family)))
    return 0;
  a = g_new0 (GimpLdmAddon, 1);
  a->name = g_strdup (e->name);
  a->path = g_strdup (e->path);
  a->family = g_strdup (e->family ? e->family : "");
  scan->list = g_list_prepend (scan->list, a);
  return 0;
}

static gint
addon_cmp (gconstpointer a,
           gconstpointer b)
{
  return g_strcmp0 (((const GimpLdmAddon *) a)->name,
                    ((const GimpLdmAddon *) b)->name);
}

GList *
gimp_ldm_models_addons (const gchar *configured,
                        gint         kind,
                        const gchar *family)
{
  gchar    *roots = gimp_ldm_models_roots (configured);
  AddonScan scan = { NULL, family };
  ldm_error err;

  ldm_error_clear (&err);
  if (*roots)
    ldm_models_scan (roots, (ldm_model_kind) kind, on_addon, &scan, &err);
  g_free (roots);
  return g_list_sort (scan.list, addon_cmp);
}

void
gimp_ldm_addon_free (GimpLdmAddon *addon)
{
  g_free (addon->name);
  g_free (addon->path);
  g_free (addon->family);
  g_free (addon);
}

gchar *
gimp_ldm_models_quick_hash (const gchar *path)
{
  GChecksum *sum;
  FILE      *f;
  guchar    *buf;
  size_t     n;
  GStatBuf   st;
  gchar     *hex;
  gchar      size_str[32];

  if (g_stat (path, &st) != 0)
    return NULL;
  if (S_ISDIR (st.st_mode))
    return g_strdup ("folder");
  f = g_fopen (path, "rb");
  if (! f)
    return NULL;
  buf = g_malloc (1 << 20);
  n = fread (buf, 1, 1 << 20, f);
  fclose (f);
  sum = g_checksum_new (G_CHECKSUM_SHA256);
  g_checksum_update (sum, buf, n);
  g_snprintf (size_str, sizeof (size_str), "%" G_GINT64_FORMAT, (gint64) st.st_size);
  g_checksum_update (sum, (const guchar *) size_str, strlen (size_str));
  hex = g_strdup_printf ("sha256-1m:%s", g_checksum_get_string (sum));
  g_checksum_free (sum);
  g_free (buf);
  return hex;
}
